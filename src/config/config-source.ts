import type { ConfigFiles } from './config-files.js';
import type { ConfigProblem } from './errors.js';

export type ConfigPath = readonly (string | number)[];

/**
 * Where a config came from, as the parts compiling it need: its file, the reader for files it
 * references, and a way to point at any option. The raw config itself is LoadedConfig's; a kind
 * compiles from its own options and this.
 */
export interface ConfigSource {
  readonly file: string;
  /** The reader for files the config references; what it reads becomes part of the config version. */
  readonly files: ConfigFiles;
  /**
   * Builds a located problem for an option path: at its value, or at its key with `atKey` (an
   * unknown option), or at the nearest existing parent if the option is absent.
   */
  problem(path: ConfigPath, message: string, atKey?: boolean): ConfigProblem;
}
