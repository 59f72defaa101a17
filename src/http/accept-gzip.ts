/**
 * Whether a request's Accept-Encoding takes gzip (RFC 9110, 12.5.3): `gzip` (or `x-gzip`) with a
 * weight above 0, or `*` above 0 when gzip is not named. Prometheus sends `Accept-Encoding: gzip`
 * with every scrape; a header that is absent, empty, or names only other codings gets the text as
 * it is.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let named: number | undefined;
  let any: number | undefined;
  for (const part of header.split(',')) {
    const [coding = '', ...parameters] = part.split(';').map((piece) => piece.trim());
    const name = coding.toLowerCase();
    if (name !== 'gzip' && name !== 'x-gzip' && name !== '*') continue;
    const weight = weightOf(parameters);
    if (name === '*') any = weight;
    // Named twice (as gzip and x-gzip): the higher weight, so a "gzip;q=0, x-gzip" still means yes.
    else named = Math.max(named ?? 0, weight);
  }
  return (named ?? any ?? 0) > 0;
}

/** The `q` of a coding's parameters: 1 when absent; 0 when it is not a number from 0 to 1, as a client that wrote it badly cannot be said to want the coding. */
function weightOf(parameters: readonly string[]): number {
  for (const parameter of parameters) {
    const [key = '', value = ''] = parameter.split('=').map((piece) => piece.trim());
    if (key.toLowerCase() !== 'q') continue;
    if (!/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value)) return 0;
    return Number(value);
  }
  return 1;
}
