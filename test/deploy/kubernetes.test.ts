import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { BASE_DIR, generated } from '../../scripts/gen-kubernetes.js';
import { parseConfig } from '../../src/config/load.js';
import { schemaErrors } from './kubernetes-schemas.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECRETS = '/etc/upkeep/secrets';

// Only the fields the assertions read; every object is validated in full against its schema.
const object = z.object({ apiVersion: z.string(), kind: z.string(), metadata: z.object({ name: z.string(), labels: z.record(z.string(), z.string()).optional() }) }).passthrough();
const probe = z.object({ httpGet: z.object({ path: z.string(), port: z.union([z.string(), z.number()]) }) });
const deployment = z.object({
  spec: z.object({
    replicas: z.number(),
    strategy: z.object({ type: z.string() }),
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
    template: z.object({
      metadata: z.object({ labels: z.record(z.string(), z.string()) }),
      spec: z.object({
        automountServiceAccountToken: z.boolean(),
        securityContext: z.object({ runAsNonRoot: z.boolean(), runAsUser: z.number(), seccompProfile: z.object({ type: z.string() }) }),
        containers: z.array(z.object({
          image: z.string(),
          args: z.array(z.string()),
          ports: z.array(z.object({ name: z.string(), containerPort: z.number() })),
          livenessProbe: probe,
          readinessProbe: probe,
          startupProbe: probe,
          resources: z.object({ requests: z.object({ cpu: z.string(), memory: z.string() }), limits: z.object({ memory: z.string() }) }),
          securityContext: z.object({
            allowPrivilegeEscalation: z.boolean(),
            readOnlyRootFilesystem: z.boolean(),
            runAsNonRoot: z.boolean(),
            capabilities: z.object({ drop: z.array(z.string()) }),
            seccompProfile: z.object({ type: z.string() }),
          }),
          volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string(), subPath: z.string().optional(), readOnly: z.boolean().optional() })),
        })).length(1),
        volumes: z.array(z.object({
          name: z.string(),
          configMap: z.object({ name: z.string() }).optional(),
          secret: z.object({ secretName: z.string(), defaultMode: z.number() }).optional(),
          persistentVolumeClaim: z.object({ claimName: z.string() }).optional(),
          emptyDir: z.object({}).passthrough().optional(),
        })),
      }),
    }),
  }),
});
const configMap = z.object({ metadata: z.object({ name: z.string(), labels: z.record(z.string(), z.string()).optional() }), data: z.record(z.string(), z.string()) });
const service = z.object({ metadata: z.object({ labels: z.record(z.string(), z.string()) }), spec: z.object({ selector: z.record(z.string(), z.string()), ports: z.array(z.object({ name: z.string(), port: z.number(), targetPort: z.string() })) }) });
const serviceMonitor = z.object({ spec: z.object({ selector: z.object({ matchLabels: z.record(z.string(), z.string()) }), endpoints: z.array(z.object({ port: z.string(), path: z.string() })) }) });
const pdb = z.object({ spec: z.object({ maxUnavailable: z.number(), selector: z.object({ matchLabels: z.record(z.string(), z.string()) }) }) });
const rule = z.object({ spec: z.object({ groups: z.array(z.unknown()) }) });
const rulesFile = z.object({ groups: z.array(z.unknown()) });

type K8sObject = z.infer<typeof object>;

async function render(dir: string): Promise<K8sObject[]> {
  const { stdout } = await run('kubectl', ['kustomize', join(ROOT, dir)], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout).map((document) => object.parse(document.toJSON()));
}

function only(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((item) => item.kind === kind && (name === undefined || item.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as K8sObject;
}

/** Every ${file:...} the config reads, which must be keys of the mounted Secret. */
function secretFiles(config: string): string[] {
  return [...config.matchAll(/\$\{file:([^}]+)\}/g)].map((match) => match[1] ?? '');
}

/** parseConfig on a config whose secret files are written into a scratch directory. */
async function checkConfig(config: string): Promise<ReturnType<typeof parseConfig>> {
  const dir = await mkdtemp(join(tmpdir(), 'upkeep-k8s-secrets-'));
  try {
    for (const file of secretFiles(config)) await writeFile(join(dir, file.slice(SECRETS.length + 1)), 'secret-value\n');
    return parseConfig(config.replaceAll(SECRETS, dir), {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

t.test('kubectl is installed (kubectl kustomize renders offline)', async (t) => {
  const version = await run('kubectl', ['version', '--client']).catch((err: Error) => ({ stdout: '', stderr: err.message }));
  t.match(version.stdout, /Kustomize Version/, `kubectl version --client: ${version.stderr}`);
});

t.test('the generated PrometheusRule and dashboard ConfigMaps are committed as npm run gen:kubernetes writes them', async (t) => {
  const files = await generated();
  t.same(Object.keys(files).sort(), [`${BASE_DIR}/dashboards.yaml`, `${BASE_DIR}/prometheusrule.yaml`]);
  for (const [path, content] of Object.entries(files)) {
    t.equal(await readFile(join(ROOT, path), 'utf8'), content, `${path} is up to date (run npm run gen:kubernetes)`);
  }
});

t.test('the base: one replica on the file store, every object valid against its schema', async (t) => {
  const objects = await render('deploy/kubernetes');
  t.same(objects.map((item) => `${item.kind}/${item.metadata.name.replace(/-[a-z0-9]{10}$/, '-HASH')}`).sort(), [
    'ConfigMap/upkeep-config-HASH', 'ConfigMap/upkeep-overview-dashboard', 'ConfigMap/upkeep-remediation-dashboard',
    'Deployment/upkeep', 'PersistentVolumeClaim/upkeep-state', 'PodDisruptionBudget/upkeep', 'PrometheusRule/upkeep',
    'Service/upkeep', 'ServiceMonitor/upkeep',
  ]);
  t.same(schemaErrors(objects), [], 'every object validates against the Kubernetes and prometheus-operator schemas');

  const { spec } = deployment.parse(only(objects, 'Deployment'));
  const pod = spec.template.spec;
  const container = pod.containers[0];
  if (!container) throw new Error('no container');
  t.equal(spec.replicas, 1);
  t.equal(spec.strategy.type, 'Recreate', 'the file store has one writer at a time');
  const packageJson = z.object({ version: z.string() }).parse(JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));
  t.equal(container.image, `upkeep:${packageJson.version}`, 'the image tag is the package version');
  t.same(container.args, ['serve', '--config', '/etc/upkeep/upkeep.yml'], 'the image default command');
  t.same(container.ports, [{ name: 'http', containerPort: 9630 }]);
  t.same([container.livenessProbe.httpGet, container.readinessProbe.httpGet, container.startupProbe.httpGet],
    [{ path: '/healthz', port: 'http' }, { path: '/readyz', port: 'http' }, { path: '/healthz', port: 'http' }]);
  t.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory, 'requests and a memory limit');
  t.same(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
  t.equal(pod.automountServiceAccountToken, false, 'upkeep never talks to the Kubernetes API');

  // The mounts: config from the generated ConfigMap, secrets as files, state on the claim, /tmp writable.
  const volumes = new Map(pod.volumes.map((volume) => [volume.name, volume]));
  const mounts = new Map(container.volumeMounts.map((mount) => [mount.mountPath, mount]));
  const config = configMap.parse(only(objects, 'ConfigMap', volumes.get('config')?.configMap?.name));
  t.match(mounts.get('/etc/upkeep/upkeep.yml'), { name: 'config', subPath: 'upkeep.yml', readOnly: true });
  t.match(mounts.get(SECRETS), { name: 'secrets', readOnly: true });
  t.same(volumes.get('secrets')?.secret, { secretName: 'upkeep-secrets', defaultMode: 0o440 });
  t.match(mounts.get('/var/lib/upkeep'), { name: 'state' });
  t.same(volumes.get('state')?.persistentVolumeClaim, { claimName: only(objects, 'PersistentVolumeClaim').metadata.name });
  t.match(mounts.get('/tmp'), { name: 'tmp' });
  t.ok(volumes.get('tmp')?.emptyDir, '/tmp is an emptyDir (the root file system is read-only)');

  const text = config.data['upkeep.yml'] ?? '';
  t.equal(text, await readFile(join(ROOT, BASE_DIR, 'upkeep.yml'), 'utf8'));
  t.same(secretFiles(text).sort(), [`${SECRETS}/postgres-password`, `${SECRETS}/token`], 'secrets come from the mounted Secret');
  const checked = await checkConfig(text);
  t.same(checked.ok ? [] : checked.errors, [], 'the config validates');
  if (checked.ok) {
    t.equal(checked.config.server.host, '0.0.0.0');
    t.equal(checked.config.server.port, 9630);
    t.equal(checked.config.state.dir, '/var/lib/upkeep');
  }

  const svc = service.parse(only(objects, 'Service'));
  t.same(svc.spec.ports, [{ name: 'http', port: 9630, targetPort: 'http' }]);
  t.same(svc.spec.selector, spec.template.metadata.labels, 'the Service selects the pods');
  t.same(spec.selector.matchLabels, spec.template.metadata.labels);
  const monitor = serviceMonitor.parse(only(objects, 'ServiceMonitor'));
  t.match(svc.metadata.labels, monitor.spec.selector.matchLabels, 'the ServiceMonitor selects the Service');
  t.same(monitor.spec.endpoints.map((endpoint) => [endpoint.port, endpoint.path]), [['http', '/metrics']]);
  const budget = pdb.parse(only(objects, 'PodDisruptionBudget'));
  t.same(budget.spec, { maxUnavailable: 1, selector: { matchLabels: spec.template.metadata.labels } });
});

t.test('the PrometheusRule holds exactly the groups of alerts/*.rules.yml', async (t) => {
  const objects = await render('deploy/kubernetes');
  const expected = [];
  const files = (await readdir(join(ROOT, 'alerts'))).filter((name) => name.endsWith('.rules.yml')).sort();
  t.ok(files.length > 0);
  for (const name of files) expected.push(...rulesFile.parse(parse(await readFile(join(ROOT, 'alerts', name), 'utf8'))).groups);
  t.same(rule.parse(only(objects, 'PrometheusRule')).spec.groups, expected);
});

t.test('one Grafana dashboard ConfigMap per grafana/dashboards/*.json, labelled for the sidecar, byte for byte', async (t) => {
  const objects = await render('deploy/kubernetes');
  const dashboards = objects.filter((item) => item.kind === 'ConfigMap' && item.metadata.labels?.grafana_dashboard === '1').map((item) => configMap.parse(item));
  const files = (await readdir(join(ROOT, 'grafana', 'dashboards'))).filter((name) => name.endsWith('.json')).sort();
  t.same(dashboards.map((map) => Object.keys(map.data)).flat().sort(), files);
  for (const map of dashboards) {
    for (const [name, content] of Object.entries(map.data)) t.equal(content, await readFile(join(ROOT, 'grafana', 'dashboards', name), 'utf8'), name);
  }
});

t.test('overlays/replicas: three replicas on the PostgreSQL state store, every object valid', async (t) => {
  const objects = await render('deploy/kubernetes/overlays/replicas');
  t.same(schemaErrors(objects), []);
  t.equal(objects.filter((item) => item.kind === 'PersistentVolumeClaim').length, 0, 'no state volume: the state is in PostgreSQL');
  const { spec } = deployment.parse(only(objects, 'Deployment'));
  t.equal(spec.replicas, 3);
  t.equal(spec.strategy.type, 'RollingUpdate');
  const state = spec.template.spec.volumes.find((volume) => volume.name === 'state');
  t.same([state?.persistentVolumeClaim, Boolean(state?.emptyDir)], [undefined, true]);
  const budget = pdb.parse(only(objects, 'PodDisruptionBudget'));
  t.equal(budget.spec.maxUnavailable, 1, 'a drain takes at most one of the three');

  const name = spec.template.spec.volumes.find((volume) => volume.name === 'config')?.configMap?.name;
  const text = configMap.parse(only(objects, 'ConfigMap', name)).data['upkeep.yml'] ?? '';
  const base = z.record(z.string(), z.unknown()).parse(parse(await readFile(join(ROOT, BASE_DIR, 'upkeep.yml'), 'utf8')));
  const replicas = z.record(z.string(), z.unknown()).parse(parse(text));
  t.same({ ...replicas, state: base.state }, base, 'the same config as the base but for the state');
  t.same(replicas.state, { postgres: { url: `postgres://upkeep_state:\${file:${SECRETS}/state-password}@postgres:5432/upkeep`, schema: 'upkeep' } });
  t.same(secretFiles(text).sort(), [`${SECRETS}/postgres-password`, `${SECRETS}/state-password`, `${SECRETS}/token`]);
});

t.test('overlays/replicas: the config validates', async (t) => {
  const text = await readFile(join(ROOT, 'deploy/kubernetes/overlays/replicas/upkeep.yml'), 'utf8');
  const checked = await checkConfig(text);
  t.same(checked.ok ? [] : checked.errors, []);
});
