/**
 * Builds the shared fixtures the slow tests wait for, ahead of them. `.ci/run` starts this in the
 * background just before `npm test`:
 * - the deploy tests' base image: on a fresh machine debootstrap takes minutes, and both deploy
 *   test files wait for it under the same lock; then the images built on it that change rarely
 *   (the product image's apt and npm ci stages, the systemd test's image). On a fresh machine
 *   these took 87 s and 44 s of a tap job slot (984 s for the whole .ci/run, 861 s since);
 * - the packed and installed package (test/product/installed.ts): `npm pack` bundles the sources
 *   (scripts/build.ts) and installs the production dependencies, about a minute on two cores.
 *   `npm test`'s own type check and import check run on one core before tap starts, so packing
 *   then uses the core they leave idle, instead of holding a tap job slot while every product
 *   test waits for it.
 * The tests still build both themselves (under the same locks) when this did not run or failed.
 */
import { installedPackage } from '../product/installed.js';
import { baseImage } from './base-image.js';
import { cachedImageStages, systemdImage, systemdSkipReason } from './docker.js';

async function timed(what: string, build: () => Promise<string>): Promise<void> {
  const started = Date.now();
  try {
    const result = await build();
    console.log(`${what} ${result} ready in ${Math.round((Date.now() - started) / 1000)} s`);
  } catch (error) {
    console.error(`${what} failed after ${Math.round((Date.now() - started) / 1000)} s (the tests build it themselves):`, error);
    process.exitCode = 1;
  }
}

async function images(): Promise<string> {
  const base = await baseImage();
  await cachedImageStages(base);
  if (await systemdSkipReason() === false) await systemdImage(base);
  return base;
}

await Promise.all([timed('installed package', installedPackage), timed('base image and the images on it', images)]);
