import picomatch from 'picomatch';

// Characters picomatch would read as regex groups or extglobs ("+(a|b)", "!(x)"); in a file name
// pattern they are the characters themselves, as they have always been ("a+b(1).log").
const LITERAL = /[()+@!]/g;

/**
 * A config file-name pattern ("refnet_*.sql.gz", "*.log*", "app-?.log", "app-[12].log",
 * "app-{web,api}.log") as a RegExp, by picomatch: the one glob dialect for every pattern in the
 * config. Patterns match a file's name, never a path, and `*` also matches names that start with
 * a dot.
 */
export function globToRegExp(pattern: string): RegExp {
  return picomatch.makeRe(pattern.replace(LITERAL, '\\$&'), { dot: true, noextglob: true });
}
