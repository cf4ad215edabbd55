/**
 * The CLI's built-in documents and their search index, so `stepwise tool web_search` answers out of
 * the box.
 */
import type { SearchDocument } from './search/index.ts';
import { SearchIndex } from './search/index.ts';

/**
 * A small built-in document set, so that `stepwise tool web_search` answers something out of the
 * box. Written for this project (short encyclopedia-style paragraphs); real runs use the search
 * QA env's generated encyclopedia or an index a user builds (`--index <file>`).
 */
export const BUILTIN_DOCUMENTS: SearchDocument[] = [
  [
    'bm25',
    'BM25',
    'BM25 is a ranking function used by search engines to score documents against a query. It weighs each query term by its inverse document frequency and saturates repeated occurrences with the parameter k1, while b controls length normalization. Typical values are k1 = 1.2 and b = 0.75.',
  ],
  [
    'reinforcement-learning',
    'Reinforcement learning',
    'Reinforcement learning trains an agent to choose actions that maximize a cumulative reward. The agent observes a state, takes an action, and receives a reward and the next observation from its environment.',
  ],
  [
    'policy-gradient',
    'Policy gradient',
    'Policy gradient methods update the parameters of a stochastic policy in the direction that makes rewarded actions more likely. REINFORCE, PPO and GRPO are policy gradient methods.',
  ],
  [
    'grpo',
    'GRPO',
    'Group Relative Policy Optimization samples a group of responses to the same prompt and uses each response reward minus the group mean, divided by the group standard deviation, as its advantage. It needs no learned value function.',
  ],
  [
    'webassembly',
    'WebAssembly',
    'WebAssembly is a binary instruction format for a stack-based virtual machine. Programs compiled to WebAssembly run in a memory-safe sandbox with a linear memory that the host can limit.',
  ],
  [
    'pyodide',
    'Pyodide',
    'Pyodide is a port of CPython to WebAssembly. It runs Python in browsers and in Node.js and ships most of the Python standard library.',
  ],
  [
    'quickjs',
    'QuickJS',
    'QuickJS is a small embeddable JavaScript engine written by Fabrice Bellard. Compiled to WebAssembly it can run untrusted JavaScript with limits on memory, stack size and running time.',
  ],
  [
    'bubblewrap',
    'Bubblewrap',
    'Bubblewrap is a low-level unprivileged sandboxing tool for Linux. It creates new namespaces for a process, so that the process sees only the files bound into it, no network, and its own process tree.',
  ],
  [
    'onnx',
    'ONNX',
    'ONNX, the Open Neural Network Exchange, is an open format for machine learning models. A model is a graph of operators with typed inputs and outputs; ONNX Runtime executes such graphs on CPUs and GPUs.',
  ],
  [
    'sqlite',
    'SQLite',
    'SQLite is a self-contained, serverless SQL database engine. A whole database lives in a single file, which makes it a convenient store for experiment logs and trajectories.',
  ],
  [
    'typescript',
    'TypeScript',
    'TypeScript is a typed superset of JavaScript developed by Microsoft. Its compiler checks types and emits plain JavaScript.',
  ],
  [
    'zod',
    'Zod',
    'Zod is a TypeScript-first schema declaration and validation library. A schema validates data at run time and infers the static type, and can be exported as JSON Schema.',
  ],
  [
    'json-schema',
    'JSON Schema',
    'JSON Schema is a vocabulary for describing the structure of JSON documents. Function-calling APIs of language models describe tool arguments with JSON Schema.',
  ],
  [
    'transformer',
    'Transformer',
    'The transformer is a neural network architecture built from self-attention and feed-forward layers. Decoder-only transformers generate text one token at a time.',
  ],
  [
    'kv-cache',
    'KV cache',
    'A key-value cache stores the attention keys and values of tokens already processed, so that generating each new token costs time proportional to the sequence length instead of its square.',
  ],
  [
    'tokenizer',
    'Tokenizer',
    'A tokenizer splits text into tokens from a fixed vocabulary. Byte-pair encoding merges the most frequent pairs of symbols until the vocabulary reaches its target size.',
  ],
  [
    'react-agent',
    'ReAct',
    'ReAct interleaves reasoning and acting: a language model writes a thought, calls a tool, reads the observation, and repeats until it can answer.',
  ],
  [
    'credit-assignment',
    'Credit assignment',
    'Credit assignment decides which of many decisions deserve the reward that arrived at the end of an episode. Step-level methods give each turn of a multi-turn agent its own advantage.',
  ],
  [
    'paris',
    'Paris',
    'Paris is the capital and largest city of France. It lies on the river Seine and had about two million inhabitants in 2020.',
  ],
  [
    'mount-everest',
    'Mount Everest',
    "Mount Everest is Earth's highest mountain above sea level, at 8,849 metres. It lies in the Mahalangur Himal range on the border between Nepal and China.",
  ],
  [
    'python-language',
    'Python (programming language)',
    'Python is a high-level, general-purpose programming language created by Guido van Rossum and first released in 1991. Its design emphasizes readability.',
  ],
  [
    'javascript-language',
    'JavaScript',
    'JavaScript is a programming language created by Brendan Eich at Netscape in 1995. It is the language of web browsers and, through Node.js, of many servers.',
  ],
  [
    'nodejs',
    'Node.js',
    'Node.js is a JavaScript runtime built on the V8 engine. It runs JavaScript outside the browser with an event loop and non-blocking input and output.',
  ],
  [
    'langchain',
    'LangChain',
    'LangChain is a framework for building applications with language models. Its tools pair a function with a name, a description and a schema for the arguments.',
  ],
].map(([id, title, text]) => ({ id: id!, title: title!, text: text! }));

let builtin: SearchIndex | undefined;

/** The BM25 index over `BUILTIN_DOCUMENTS`, built on first use. */
export function builtinSearchIndex(): SearchIndex {
  builtin ??= SearchIndex.build(BUILTIN_DOCUMENTS);
  return builtin;
}
