// Validates rendered Kubernetes objects against the API schemas: kubernetes-models for the built-in kinds,
// @kubernetes-models/prometheus-operator for ServiceMonitor and PrometheusRule, plus a strict unknown-field check.

/** A model class of kubernetes-models: `new Model(obj).validate()` throws a ValidationError. */
type Model = new (data: unknown) => { validate(): void };

/** The module that holds the model of an apiVersion/kind. */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  // Core kinds are `v1/<Kind>`, the others `<group>/<version>/<Kind>`.
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const models = new Map<string, Promise<Model>>();

export async function modelFor(apiVersion: string, kind: string): Promise<Model> {
  const key = `${apiVersion}/${kind}`;
  if (!models.has(key)) {
    models.set(
      key,
      import(modelModule(apiVersion, kind)).then(
        (m: Record<string, Model>) => {
          const model = m[kind];
          if (!model) throw new Error(`${modelModule(apiVersion, kind)} has no ${kind}`);
          return model;
        },
        () => {
          throw new Error(
            `no schema for apiVersion ${apiVersion}, kind ${kind} (not in kubernetes-models or @kubernetes-models/prometheus-operator)`,
          );
        },
      ),
    );
  }
  return models.get(key)!;
}

/** The schema's complaints about `obj`, as `path message` strings (empty: valid). */
function complaints(model: Model, obj: unknown): { instancePath: string; message: string }[] {
  try {
    new model(obj).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!errors) throw err;
    return errors.map((e) => ({ instancePath: e.instancePath, message: e.message ?? 'invalid' }));
  }
}

const pointer = (key: string) => `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
/** A value of no JSON type: every schema that describes a field rejects it. */
const PROBE = Symbol('not-json');

/**
 * Fields the schema does not know. The Kubernetes OpenAPI schemas leave objects open (no
 * additionalProperties: false), so a misspelt field validates, and the API server drops it or, with
 * strict field validation, refuses the object. Each field is probed in turn: a field the schema describes
 * rejects a value of no JSON type at its own path; a field it does not describe lets it through.
 */
function unknownFields(model: Model, root: any): string[] {
  const unknown: string[] = [];
  const walk = (node: any, path: string) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      const here = path + pointer(key);
      const saved = node[key];
      node[key] = PROBE;
      const known = complaints(model, root).some((e) => e.instancePath === here);
      node[key] = saved;
      if (known) walk(saved, here);
      else unknown.push(here);
    }
  };
  walk(root, '');
  return unknown;
}

/** Every problem of one rendered object: schema errors, then unknown fields. Empty when it is valid. */
export async function validateObject(obj: any): Promise<string[]> {
  if (typeof obj?.apiVersion !== 'string' || typeof obj?.kind !== 'string') return ['no apiVersion or kind'];
  const model = await modelFor(obj.apiVersion, obj.kind);
  const copy = structuredClone(obj);
  const errors = complaints(model, copy).map((e) => `${e.instancePath || '/'} ${e.message}`);
  if (errors.length) return errors;
  return unknownFields(model, copy).map((p) => `${p} is not a field of ${obj.apiVersion} ${obj.kind}`);
}
