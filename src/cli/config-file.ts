import { resolve } from 'node:path';

/** `-c FILE`, else $PORTCULLIS_CONFIG, else gateway.yaml in the working directory. */
export function configFile(given: string | boolean | string[] | undefined): string {
  return resolve(typeof given === 'string' ? given : process.env.PORTCULLIS_CONFIG ?? 'gateway.yaml');
}
