export type { Stage, StageResult, Verdict } from './exchange.js';
