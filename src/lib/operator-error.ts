/**
 * A failure whose message is the whole answer for the operator: one line that names what failed,
 * where (listener, option, file) and what would be right. The CLI prints it as it is, without a
 * stack, and exits 1; anything else that escapes is a defect and keeps its stack.
 */
export class OperatorError extends Error {
  override readonly name = 'OperatorError';
}
