// Parses YAML (kustomize output, Prometheus rule files) for the ops tests: the `yaml` npm package
// when installed, else python3's PyYAML; no hand-written YAML reader.
import { spawnSync } from 'node:child_process';

type YamlModule = { parseAllDocuments(text: string): Array<{ toJS(): unknown; errors: unknown[] }> };

let yamlModule: YamlModule | null | undefined;

async function loadYamlPackage(): Promise<YamlModule | null> {
  if (yamlModule !== undefined) return yamlModule;
  // A variable specifier: the package is optional, so tsc must not try to resolve it.
  const name = 'yaml';
  try {
    yamlModule = (await import(name)) as YamlModule;
  } catch {
    yamlModule = null;
  }
  return yamlModule;
}

const PY = 'import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)';

/** Every non-empty document of a YAML stream, as plain JSON values. */
export async function parseYamlDocuments(text: string): Promise<any[]> {
  const pkg = await loadYamlPackage();
  if (pkg) {
    const docs = pkg.parseAllDocuments(text);
    for (const d of docs) if (d.errors.length) throw new Error(`YAML error: ${String(d.errors[0])}`);
    return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
  }
  const r = spawnSync('python3', ['-c', PY], { input: text, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    throw new Error(
      'parsing YAML needs the `yaml` npm package (npm install --save-dev yaml) or python3 with PyYAML ' +
        `(pip install pyyaml, or apt-get install -y python3-yaml): ${r.error?.message ?? r.stderr}`,
    );
  }
  return JSON.parse(r.stdout) as any[];
}

/** One YAML document. */
export async function parseYaml(text: string): Promise<any> {
  const docs = await parseYamlDocuments(text);
  if (docs.length !== 1) throw new Error(`expected one YAML document, got ${docs.length}`);
  return docs[0];
}
