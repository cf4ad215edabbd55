// The LangChain backend over LangChain's own chat-model classes (its testing models run the real
// BaseChatModel invoke path: callbacks, call options, tool binding).
import { AIMessageChunk } from '@langchain/core/messages';
import { FakeChatModel, FakeStreamingChatModel } from '@langchain/core/utils/testing';
import { describe, expect, it } from 'vitest';
import { LangChainChatModel } from '../../src/agents/chat/index.ts';
import type { ChatMessage } from '../../src/agents/types.ts';
import { PYTHON_TOOL } from './chat-helpers.ts';

const transcript: ChatMessage[] = [
  { role: 'system', content: 'You solve math.' },
  { role: 'user', content: 'What is 1 + 1?' },
  {
    role: 'assistant',
    content: '',
    toolCalls: [{ id: 'c1', name: 'python', arguments: '{"code":"print(1+1)"}' }],
  },
  { role: 'tool', content: '2', toolCallId: 'c1', name: 'python' },
];

describe('LangChainChatModel', () => {
  it('sends every message in order and returns the reply text', async () => {
    const model = new LangChainChatModel(new FakeChatModel({}));
    expect(model.name).toBe('langchain:FakeChatModel');
    const r = await model.chat(transcript);
    // FakeChatModel answers with its input messages' contents joined by newlines.
    expect(r.text).toBe(['You solve math.', 'What is 1 + 1?', '', '2'].join('\n'));
    expect(r.finishReason).toBe('stop');
    expect(r.toolCalls).toBeUndefined();
    // Stop strings reach the model as call options (FakeChatModel then answers with the first one).
    expect((await model.chat(transcript, { stop: ['<END>'] })).text).toBe('<END>');
  });

  it('binds tools and returns the tool calls the model made', async () => {
    const call = { id: 'x9', name: 'python', args: { code: 'print(2)' }, type: 'tool_call' as const };
    const fake = new FakeStreamingChatModel({
      chunks: [new AIMessageChunk({ content: '', tool_calls: [call] })],
    });
    const r = await new LangChainChatModel(fake).chat(transcript.slice(0, 2), { tools: [PYTHON_TOOL] });
    expect(r.finishReason).toBe('tool_calls');
    expect(r.toolCalls).toEqual([{ id: 'x9', name: 'python', arguments: '{"code":"print(2)"}' }]);
  });

  it('names what is wrong with a tool message that answers no call', async () => {
    const model = new LangChainChatModel(new FakeChatModel({}));
    await expect(model.chat([{ role: 'tool', content: '2' }])).rejects.toThrow(/without toolCallId/);
  });
});
