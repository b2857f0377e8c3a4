import { Template } from '@huggingface/jinja';
import { FormatError, OptionsError } from './errors.ts';

/** One chat message, as OpenAI's API and Hugging Face chat templates take it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const MAX_TEMPLATE_CHARS = 32 * 1024;
const MAX_OUTPUT_CHARS = 1024 * 1024;
const MAX_MESSAGES = 256;

/**
 * Compiles a chat template taken from a model file. The template is untrusted: it runs in
 * @huggingface/jinja's interpreter (no JavaScript evaluation), its size is capped, and `range()`
 * over anything but a small literal is refused before rendering, so a template cannot loop for
 * long; the rendered text is capped too.
 * @example
 * const chat = compileChatTemplate(model.chatTemplate!, { bos: '<s>', eos: '</s>' });
 * const prompt = chat([{ role: 'user', content: 'hi' }]);
 */
export function compileChatTemplate(
  source: string,
  tokens: { bos?: string; eos?: string } = {},
): (messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }) => string {
  if (source.length > MAX_TEMPLATE_CHARS)
    throw new FormatError(
      `chat template is ${source.length} characters, over the ${MAX_TEMPLATE_CHARS} cap`,
      {
        field: 'tokenizer.chat_template',
      },
    );
  // range(N) with a large or computed bound is the cheap way to make an interpreter spin
  for (const m of source.matchAll(/range\s*\(([^)]*)\)/g)) {
    const args = m[1].split(',').map((a) => a.trim());
    if (!args.every((a) => /^-?\d{1,4}$/.test(a) || /^messages\s*\|\s*length$/.test(a)))
      throw new FormatError(`chat template calls range(${m[1]}), which is not allowed`, {
        field: 'tokenizer.chat_template',
        hint: 'only range() over small literals or messages|length is accepted',
      });
  }
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new FormatError(`chat template does not parse: ${(e as Error).message}`, {
      field: 'tokenizer.chat_template',
    });
  }
  return (messages, opts = {}) => {
    if (messages.length === 0 || messages.length > MAX_MESSAGES)
      throw new OptionsError(`messages must hold 1 to ${MAX_MESSAGES} entries`, { field: 'messages' });
    let out: string;
    try {
      out = template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: opts.addGenerationPrompt ?? true,
        bos_token: tokens.bos ?? '',
        eos_token: tokens.eos ?? '',
      });
    } catch (e) {
      throw new OptionsError(`chat template failed on these messages: ${(e as Error).message}`, {
        field: 'messages',
      });
    }
    if (out.length > MAX_OUTPUT_CHARS)
      throw new OptionsError('rendered chat prompt is over 1 MiB', { field: 'messages' });
    return out;
  };
}
