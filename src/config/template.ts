/**
 * `{{labels.NAME}}` in a rule's params, filled from the firing alert's labels. Global: use it with
 * `replace` or `search`, which ignore and reset lastIndex, never with `test` or `exec`.
 */
export const LABEL_PLACEHOLDER = /\{\{\s*labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** Whether a param value is only known once an alert fills its placeholders. */
export function isTemplated(value: unknown): boolean {
  return typeof value === 'string' && value.search(LABEL_PLACEHOLDER) >= 0;
}
