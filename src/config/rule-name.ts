/** An attribute rule's name (`routes[].when[].name`): lower case, digits and `-`, starting with a letter. */
export const RULE_NAME_PATTERN = '^[a-z][a-z0-9-]{0,62}$';
