// scripts/prometheus-config.mjs, which configures the Prometheus of `scripts/cluster up --monitoring` and of the
// scenario test: the rules copy is the shipped file (only `for:` changes, and only when asked), and the config loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/node.js';
import { requireOptional } from '../helpers/prereq.js';
import { parseYaml } from '../helpers/yaml.js';
import { rulesFile } from '../helpers/ops.js';

const script = join(repoRoot, 'scripts/prometheus-config.mjs');

function generate(...args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-promcfg-'));
  const r = spawnSync(process.execPath, [script, '--out', dir, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  return {
    dir,
    ...r,
    config: () => parseYaml(readFileSync(join(dir, 'prometheus.yml'), 'utf8')),
    rules: () => readFileSync(join(dir, 'switchboard-rules.yml'), 'utf8'),
  };
}

test('without --alert-for the rules copy is the shipped file, byte for byte', async () => {
  const g = generate('--nodes', '127.0.0.1:9091,127.0.0.1:9092', '--haproxy', '127.0.0.1:8404');
  try {
    assert.equal(g.status, 0, g.stderr);
    assert.equal(g.rules(), readFileSync(rulesFile, 'utf8'));
    const cfg = await g.config();
    assert.deepEqual(cfg.rule_files, [join(g.dir, 'switchboard-rules.yml')]);
    assert.deepEqual(
      cfg.scrape_configs.map((s: any) => [s.job_name, s.static_configs[0].targets]),
      [
        ['switchboard', ['127.0.0.1:9091', '127.0.0.1:9092']],
        ['haproxy', ['127.0.0.1:8404']],
      ],
      'the job labels the alert rules select on',
    );
  } finally {
    rmSync(g.dir, { recursive: true, force: true });
  }
});

test('--alert-for changes every alert`s for: in the copy and nothing else; promtool loads the result', async (t) => {
  const g = generate('--nodes', '127.0.0.1:9091', '--scrape-interval', '1s', '--alert-for', '3s');
  try {
    assert.equal(g.status, 0, g.stderr);
    const shipped = await parseYaml(readFileSync(rulesFile, 'utf8'));
    const copy = await parseYaml(g.rules());
    const rules = (x: any) => x.groups.flatMap((gr: any) => gr.rules);
    assert.ok(rules(copy).length >= 9);
    for (const r of rules(copy)) assert.equal(r.for, '3s', `${r.alert} for`);
    const strip = (x: any) => rules(x).map(({ for: _f, ...rest }: any) => rest);
    assert.deepEqual(strip(copy), strip(shipped), 'expressions, labels and annotations unchanged');
    assert.equal((await g.config()).global.scrape_interval, '1s');
    if (!requireOptional(t, 'promtool')) return;
    const check = spawnSync('promtool', ['check', 'config', join(g.dir, 'prometheus.yml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  } finally {
    rmSync(g.dir, { recursive: true, force: true });
  }
});

test('bad arguments and a rule without for: are refused', async () => {
  const g = generate('--nodes', '127.0.0.1:9091', '--alert-for', 'soon');
  rmSync(g.dir, { recursive: true, force: true });
  assert.equal(g.status, 2);
  assert.match(g.stderr, /--alert-for must be a Prometheus duration/);
  const { renderRules } = await import(pathToFileURL(script).href);
  const text =
    'groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: up == 0\n';
  assert.throws(() => renderRules(text, '5s'), /2 alerts but 1 `for:` lines/);
  assert.equal(renderRules(text, undefined), text);
});
