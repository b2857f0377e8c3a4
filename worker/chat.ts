// Chat prompts for the API: the runtime renders the model's template (runtime/chat.ts); this maps
// its errors to the API's (400 when the template refused the messages or a message would smuggle
// special tokens, 500 when the template itself failed).
import {
  type ChatMessage,
  FALLBACK_TEMPLATE,
  RENDER_LIMITS,
  type RenderLimits,
  chatPromptIds as runtimeChatPromptIds,
  renderTemplate as runtimeRenderTemplate,
} from '../runtime/chat.ts';
import { ChatTemplateError, OptionsError } from '../runtime/errors.ts';
import { ApiError } from './errors.ts';
import type { TokenizerLike } from './model-handle.ts';

export type { ChatMessage, RenderLimits };
export { FALLBACK_TEMPLATE, RENDER_LIMITS };

function mapped<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ChatTemplateError)
      throw e.rejected
        ? new ApiError(400, e.message, { param: 'messages', code: 'chat_template_error' })
        : new ApiError(500, e.message, { code: 'chat_template_error' });
    if (e instanceof OptionsError && e.field?.startsWith('messages'))
      throw new ApiError(400, e.message, { param: e.field, code: 'invalid_value' });
    throw e;
  }
}

/**
 * Renders a chat template under the runtime's limits, with API errors.
 * @example
 * renderTemplate('{% for m in messages %}{{ m.content }}{% endfor %}', { messages: [{ role: 'user', content: 'hi' }] }); // 'hi'
 */
export function renderTemplate(
  source: string,
  context: Record<string, unknown>,
  limits: RenderLimits = RENDER_LIMITS,
) {
  return mapped(() => runtimeRenderTemplate(source, context, limits));
}

/**
 * Chat messages to prompt ids with the model's template (see runtime/chat.ts), with API errors.
 * @example
 * const { ids } = chatPromptIds(model.tokenizer, model.chatTemplate, [{ role: 'user', content: 'hi' }]);
 */
export function chatPromptIds(
  tok: TokenizerLike,
  template: string | undefined,
  messages: ChatMessage[],
  limits: RenderLimits = RENDER_LIMITS,
): { ids: number[]; text: string } {
  return mapped(() => runtimeChatPromptIds(tok, template, messages, limits));
}
