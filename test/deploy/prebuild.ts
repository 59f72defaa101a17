/**
 * Builds the deploy tests' base image ahead of them. `.ci/run` starts this in the background
 * before the suite: on a fresh machine debootstrap takes minutes, and both deploy test files wait
 * for it under the same lock, so building it while the other tests run keeps both job slots busy.
 * The tests still build it themselves when this did not run or failed.
 */
import { baseImage } from './base-image.js';

const started = Date.now();
const tag = await baseImage();
console.log(`base image ${tag} ready in ${Math.round((Date.now() - started) / 1000)} s`);
