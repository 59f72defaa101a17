/** Rejected input: the engine journals it and answers 400 / skips, never runs anything. */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}
