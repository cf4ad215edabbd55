// stepwise's public API. Each area exports what a user needs from it, in its own block.

// --- policy (src/policy) ---

// --- envs (src/envs) ---

// --- tools (src/tools) ---

// --- store (src/store) ---

// --- credit (src/credit) ---
