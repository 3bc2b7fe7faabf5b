import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Operational logs: JSON lines on stdout (or a given destination). Requests go to the audit trail, not here. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino({
    level,
    base: { service: 'portcullis' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.token', '*.secret'], censor: '[redacted]' },
  }, destination ?? process.stdout);
}

export type { Logger };
