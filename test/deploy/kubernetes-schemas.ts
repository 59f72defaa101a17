import { fileURLToPath } from 'node:url';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import ts from 'typescript';
import { z } from 'zod';

/**
 * Offline validation of rendered Kubernetes objects against the API schemas (kubernetes-models,
 * generated from Kubernetes' OpenAPI) and the prometheus-operator CRD schemas
 * (@kubernetes-models/prometheus-operator), in two passes:
 *  - the packages' validators: types, required fields, enums, formats and patterns;
 *  - the packages' TypeScript declarations, by type-checking every object as an object literal of
 *    its kind's interface, which rejects unknown fields (a misspelt `readOnlyRootFilesytem`) that
 *    the validators let through, as the API server's strict field validation does.
 */
interface Kind {
  /** The model's type guard: apiVersion and kind. */
  is(object: unknown): boolean;
  /** The schema validation: throws a message naming each problem. */
  validate(object: unknown): void;
  /** Where the TypeScript interface of the kind is declared, and its name. */
  module: string;
  type: string;
}

function kind<T>(model: { is(value: unknown): value is T; new (data?: T): { validate(): void } }, module: string, type: string): Kind {
  return {
    module,
    type,
    is: (object) => model.is(object),
    validate(object) {
      if (model.is(object)) new model(object).validate();
    },
  };
}

const OPERATOR = '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
const KINDS: readonly Kind[] = [
  kind(ConfigMap, 'kubernetes-models/v1/ConfigMap', 'IConfigMap'),
  kind(Service, 'kubernetes-models/v1/Service', 'IService'),
  kind(PersistentVolumeClaim, 'kubernetes-models/v1/PersistentVolumeClaim', 'IPersistentVolumeClaim'),
  kind(Deployment, 'kubernetes-models/apps/v1/Deployment', 'IDeployment'),
  kind(PodDisruptionBudget, 'kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'),
  kind(ServiceMonitor, `${OPERATOR}/ServiceMonitor`, 'IServiceMonitor'),
  kind(PrometheusRule, `${OPERATOR}/PrometheusRule`, 'IPrometheusRule'),
];

const identity = z.object({ apiVersion: z.string(), kind: z.string(), metadata: z.object({ name: z.string() }) });

function describe(object: unknown): string {
  const parsed = identity.safeParse(object);
  return parsed.success ? `${parsed.data.apiVersion} ${parsed.data.kind} ${parsed.data.metadata.name}` : JSON.stringify(object).slice(0, 80);
}

/** Validates each object against its kind's schema; returns one message per problem (empty: all valid). */
export function schemaErrors(objects: readonly unknown[]): string[] {
  const errors: string[] = [];
  const typed: { object: unknown; kind: Kind }[] = [];
  for (const object of objects) {
    const matched = KINDS.find((candidate) => candidate.is(object));
    if (!matched) {
      errors.push(`${describe(object)}: no schema for this kind`);
      continue;
    }
    typed.push({ object, kind: matched });
    try {
      matched.validate(object);
    } catch (err) {
      errors.push(`${describe(object)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return [...errors, ...unknownFields(typed)];
}

// A file beside this one, so the packages resolve from the repo's node_modules; never written to disk.
const CHECKED_FILE = fileURLToPath(new URL('./rendered-objects.ts', import.meta.url));

function unknownFields(typed: readonly { object: unknown; kind: Kind }[]): string[] {
  const source = typed.map(({ object, kind: { module, type } }, index) =>
    `import type { ${type} as T${index} } from '${module}';\nexport const object${index}: T${index} = ${JSON.stringify(object)};\n`).join('');
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, language, ...rest) => name === CHECKED_FILE ? ts.createSourceFile(name, source, language) : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === CHECKED_FILE || fileExists.call(host, name);
  const program = ts.createProgram([CHECKED_FILE], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const line = diagnostic.file && diagnostic.start !== undefined ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line : -1;
    // Each object is on its own line (the second of its pair), so the line names the object.
    const entry = typed[Math.floor(line / 2)];
    return `${entry ? describe(entry.object) : 'rendered objects'}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
  });
}
