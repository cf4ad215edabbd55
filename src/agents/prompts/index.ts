/**
 * Prompt formats of the single-agent loops: what the model sees, and how its reply is read.
 */
export { codeMathPrompt, codeMathSystemPrompt } from './codemath.ts';
export {
  type HouseholdDecision,
  type HouseholdPromptInput,
  type HouseholdState,
  type HouseholdTurn,
  householdConversation,
  householdMessages,
  householdPrompt,
  INVALID_ACTION_NOTE,
  PromptFormat,
  parseHouseholdResponse,
} from './household.ts';
export { messageContent, renderMessages } from './render.ts';
export { searchPrompt, searchSystemPrompt } from './search.ts';
