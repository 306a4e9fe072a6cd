using Engine.Chat;
using Engine.Generation;

namespace Engine.Cli.Commands;

/// <summary>`engine chat --model M`: an interactive chat. Each turn re-renders the conversation with the model's
/// chat template (recognized from tokenizer.chat_template, never executed) and feeds only the tokens the KV
/// cache does not already hold. Reasoning between &lt;think&gt; tags is shown apart from the answer.</summary>
public static class ChatCommand
{
    const string Help = """
        usage: engine chat --model M [--system TEXT] [--template chatml|qwen3|llama3|llama2|deepseek-r1] [-n N]
                           [--ctx N] [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--threads N] [--device D] [--gpu-layers N]
        Type a message and press Enter; /reset starts over, /exit (or end of input) quits.
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        using var model = ModelArguments.Open(cl, required: false);
        var system = cl.String("system");
        var templateName = cl.String("template");
        int n = cl.Int("n", 1024, 1, 1 << 24);
        var sampling = ModelArguments.Sampling(cl, model.Config.VocabSize);
        int ctx = ModelArguments.Context(cl, model, 4096);
        cl.RejectUnknown();

        var tokenizer = model.Tokenizer;
        ChatTemplateMatch match = templateName is not null
            ? new(ChatTemplates.ByName(templateName) ?? throw new UsageException($"unknown template '{templateName}'"), "--template")
            : ChatTemplates.Detect(model.ChatTemplateText, model.Config.Architecture, piece => tokenizer.Tokens.Contains(piece));
        var template = match.Template;
        Console.Error.WriteLine($"chat template: {template.Name} ({match.Rule}); context {ctx} tokens; /exit to quit, /reset to start over");

        var session = new Session(model.Model, tokenizer, ctx);
        var messages = new List<ChatMessage>();
        if (system is not null) messages.Add(new ChatMessage(ChatMessage.System, system));
        var options = new GenerationOptions { MaxTokens = null, Sampling = sampling, StopStrings = template.StopStrings };
        while (true)
        {
            Console.Out.Write("> ");
            Console.Out.Flush();
            var line = Console.In.ReadLine();
            if (line is null || line.Trim() == "/exit") break;
            if (line.Trim() == "/reset") { messages.RemoveAll(m => m.Role != ChatMessage.System); session.Reset(); continue; }
            if (line.Trim().Length == 0) continue;
            messages.Add(new ChatMessage(ChatMessage.User, line));
            var prompt = tokenizer.Encode(template.Render(messages, addGenerationPrompt: true), addSpecial: true, parseSpecial: true);
            int room = session.ContextLength - prompt.Length;
            if (room <= 0)
            {
                Console.Error.WriteLine($"the conversation ({prompt.Length} tokens) no longer fits the context of {ctx}: /reset or raise --ctx");
                messages.RemoveAt(messages.Count - 1);
                continue;
            }
            var splitter = new ThinkSplitter(template.GenerationPromptOpensThinking);
            bool inThinking = false;
            void Show(ThinkChunk chunk)
            {
                if (chunk.Thinking.Length > 0)
                {
                    if (!inThinking) { Console.Out.Write("[thinking] "); inThinking = true; }
                    WriteDim(chunk.Thinking);
                }
                if (chunk.Answer.Length > 0)
                {
                    if (inThinking) { Console.Out.Write("\n[answer] "); inThinking = false; }
                    Console.Out.Write(chunk.Answer);
                }
                Console.Out.Flush();
            }
            var result = session.GenerateFrom(prompt, options with { MaxTokens = Math.Min(n, room) }, piece => Show(splitter.Push(piece)));
            Show(splitter.Flush());
            Console.Out.WriteLine();
            Console.Error.WriteLine($"[{result.GeneratedTokens.Length} tokens, {result.GenerationTokensPerSecond:F1} tok/s, prompt {result.PromptTokens.Length} new tokens at {result.PromptTokensPerSecond:F1} tok/s]");
            messages.Add(new ChatMessage(ChatMessage.Assistant, StripThinking(result.Text)));
        }
        return 0;
    }

    static void WriteDim(string text)
    {
        if (Console.IsOutputRedirected) { Console.Out.Write(text); return; }
        Console.Out.Write("\u001b[2m" + text + "\u001b[0m");
    }

    /// <summary>Reasoning models are shown their earlier answers without the reasoning, as their templates do.</summary>
    static string StripThinking(string text)
    {
        int close = text.IndexOf(ThinkSplitter.CloseTag, StringComparison.Ordinal);
        return close >= 0 ? text[(close + ThinkSplitter.CloseTag.Length)..].TrimStart() : text;
    }
}
