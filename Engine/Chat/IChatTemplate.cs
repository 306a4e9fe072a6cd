namespace Engine.Chat;

/// <summary>
/// A chat prompt format: the model's own Jinja template run by the sandboxed interpreter (<see cref="JinjaChatTemplate"/>),
/// or a built-in C# format for models without one (<see cref="ChatTemplates.Detect"/>).
///
/// BOS policy: <see cref="Render(IReadOnlyList{ChatMessage}, bool)"/> never writes the leading BOS token. The tokenizer adds it (GGUF
/// tokenizer.ggml.add_bos_token), exactly as llama.cpp's built-in templates expect; <see cref="BosToken"/> says
/// which one belongs there. BOS tokens in the middle of the text (Llama-2 turns) are written by the template.
/// The rendered text contains special-token strings (&lt;|im_start|&gt;, …): tokenize it with special-token
/// parsing on for the template's markers.
/// </summary>
internal interface IChatTemplate
{
    /// <summary>Short name for logs ("chatml", "qwen3", "llama3", "llama2", "deepseek-r1").</summary>
    string Name { get; }

    /// <summary>Renders the conversation; with <paramref name="addGenerationPrompt"/> the text ends where the
    /// assistant's reply begins.</summary>
    /// <exception cref="ChatTemplateException">The conversation does not fit the template (unknown role, order).</exception>
    string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

    /// <summary>Renders with the tools the model may call. Only a model's own (Jinja) template knows how its model was
    /// taught to see tools, so the built-in formats refuse them rather than guess.</summary>
    /// <exception cref="ChatTemplateException">The template cannot show tools or tool calls, or the conversation does not fit it.</exception>
    string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ChatTool> tools)
    {
        if (tools.Count > 0 || messages.Any(m => m.ToolCalls.Count > 0))
            throw new ChatTemplateException($"the built-in {Name} chat format cannot show tools or tool calls: use a model that carries its own chat " +
                "template (tokenizer.chat_template), or pass one (ModelLoadOptions.ChatTemplateText, --chat-template-file)");
        return Render(messages, addGenerationPrompt);
    }

    /// <summary>Text markers that end the assistant's turn (end-of-turn / end-of-sequence tokens as text). Usually
    /// also special token ids; match by id when possible, by text as a backstop.</summary>
    IReadOnlyList<string> StopStrings { get; }

    /// <summary>The BOS token the tokenizer must put first, or null when the format has none (ChatML).</summary>
    string? BosToken { get; }

    /// <summary>True when the generation prompt already opens a &lt;think&gt; block (DeepSeek-R1), so the reply
    /// starts inside the reasoning: construct <see cref="ThinkSplitter"/> with startsInThinking = true.</summary>
    bool GenerationPromptOpensThinking { get; }
}
