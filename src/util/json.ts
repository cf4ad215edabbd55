/** `Json`: any JSON value (configs, a step's extras, advantage details), shared by agents and the store. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
