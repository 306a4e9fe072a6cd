namespace Engine.Cli.Commands;

/// <summary>`engine chat --model M`: an interactive chat, a thin layer over <see cref="Session.ChatAsync"/> (which renders
/// the model's chat template, reuses the cached conversation and splits reasoning from the answer). Reasoning is shown
/// dimmed, apart from the answer.</summary>
public static class ChatCommand
{
    const string Help = """
        usage: engine chat --model M [--system TEXT] [--chat-template-file F | --template NAME] [-n N]
                           [--ctx N] [--kv-type T] [--kv-budget S] [--parallel N] [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--threads N] [--device D] [--gpu-layers N]
        Type a message and press Enter; /reset starts over, /exit (or end of input) quits.
        The model's own chat template (Jinja) renders the conversation, unless one of these replaces it:

        """ + ModelArguments.TemplateHelp + ModelArguments.GrammarHelp + ModelArguments.ControlVectorHelp + ModelArguments.KvHelp + ModelArguments.GptqHelp;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, ModelArguments.Flags, ModelArguments.Repeatable, ModelArguments.Pairs);
        if (cl.Has("help") || cl.Has("h")) { Console.WriteLine(Help); return 0; }
        using var model = ModelArguments.Load(cl, required: false);
        var system = cl.String("system");
        int n = cl.Int("n", 1024, 1, 1 << 24);
        var options = ModelArguments.Generate(cl, model.Info.VocabularySize) with { MaxTokens = n };
        int ctx = ModelArguments.Context(cl, model.Info.TrainedContextLength, 4096);
        cl.RejectUnknown();
        Console.Error.WriteLine($"chat template: {model.Info.ChatFormat}; context {ctx} tokens; /exit to quit, /reset to start over");

        using var session = model.CreateSession(ctx);
        var messages = new List<ChatTurn>();
        if (system is not null) messages.Add(ChatTurn.System(system));
        while (true)
        {
            Console.Out.Write("> ");
            Console.Out.Flush();
            var line = Console.In.ReadLine();
            if (line is null || line.Trim() == "/exit") break;
            if (line.Trim() == "/reset") { messages.RemoveAll(m => m.Role != "system"); session.Reset(); continue; }
            if (line.Trim().Length == 0) continue;
            messages.Add(ChatTurn.User(line));
            try
            {
                var answer = Reply(session, messages, options).GetAwaiter().GetResult();
                messages.Add(ChatTurn.Assistant(answer));
            }
            catch (ContextOverflowException)
            {
                Console.Error.WriteLine($"the conversation no longer fits the context of {ctx} tokens: /reset or raise --ctx");
                messages.RemoveAt(messages.Count - 1);
            }
        }
        return 0;
    }

    /// <summary>Streams one reply; returns the answer (without its reasoning, which the model is not shown again).</summary>
    static async Task<string> Reply(Session session, List<ChatTurn> messages, GenerateOptions options)
    {
        var answer = new System.Text.StringBuilder();
        bool inThinking = false;
        GeneratedToken? last = null;
        // Consumed asynchronously (one wait for the whole reply), so each step runs on the worker that computed the last.
        await foreach (var update in session.ChatAsync(messages, options).ConfigureAwait(false))
        {
            if (update.Reasoning.Length > 0)
            {
                if (!inThinking) { Console.Out.Write("[thinking] "); inThinking = true; }
                WriteDim(update.Reasoning);
            }
            if (update.Answer.Length > 0)
            {
                if (inThinking) { Console.Out.Write("\n[answer] "); inThinking = false; }
                Console.Out.Write(update.Answer);
                answer.Append(update.Answer);
            }
            Console.Out.Flush();
            last = update.Token;
        }
        Console.Out.WriteLine();
        var t = last!.Timings!;
        Console.Error.WriteLine($"[{t.GeneratedTokens} tokens, {t.GenerationTokensPerSecond:F1} tok/s, prompt {t.PromptTokens} new tokens at {t.PromptTokensPerSecond:F1} tok/s, {t.CachedTokens} reused from the cache]");
        return answer.ToString();
    }

    static void WriteDim(string text)
    {
        if (Console.IsOutputRedirected) { Console.Out.Write(text); return; }
        Console.Out.Write("\u001b[2m" + text + "\u001b[0m");
    }
}
