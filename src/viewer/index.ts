/**
 * The trajectory replay viewer: an HTTP server over a store opened read-only, and its page.
 */
export {
  BadRequest,
  type CreditView,
  type Evaluation,
  NotFound,
  type RunSummary,
  type TokenDecoder,
} from './api.ts';
export { startViewer, type Viewer, type ViewerOptions } from './server.ts';
