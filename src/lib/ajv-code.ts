/**
 * Ajv's code generation options for every schema the gateway compiles (the config's, policy test
 * files', routes' JSON Schemas and OpenAPI documents).
 *
 * `optimize: false`: Ajv's optimisation pass counts the names in the code it generates (`err12`,
 * `_errs3`, `valid7`, …) in plain objects keyed by those names. V8 records the first property ever
 * added to a plain object as a transition of the one hidden class all plain objects start from,
 * and stops recording them at 1,536: compiling the config's own schema alone used to reach that.
 * From then on every object of a shape the process had not built before gets a hidden class of its
 * own, request bodies included, and each read of one of its properties is a slow lookup: the
 * bench's authenticated POST routes took 12–13 % more instructions per request for it. Without the
 * pass the generated code keeps some names and assignments the pass would remove (the bench's
 * order schema: 9,337 characters against 8,677), and validates as fast.
 */
export const AJV_CODE = Object.freeze({ optimize: false });
