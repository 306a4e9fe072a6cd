namespace Engine.Chat;

/// <summary>The template chosen by <see cref="ChatTemplates.Detect"/> and the rule that chose it (for logs and
/// --verbose output, so a wrong pick can be explained and overridden).</summary>
internal sealed record ChatTemplateMatch(IChatTemplate Template, string Rule);

/// <summary>
/// Picks a built-in renderer for a model whose own Jinja template cannot be run (none, or one that does not parse):
/// the template text is only searched for fixed marker strings here. Rules run in a fixed order and the first that
/// matches wins.
/// </summary>
internal static class ChatTemplates
{
    /// <summary>The names <see cref="ByName"/> accepts, for error messages.</summary>
    public const string Names = "chatml, qwen2, qwen3, llama3, llama2, deepseek-r1 or deepseek-v3";

    /// <summary>Built-in templates by name, for an explicit --chat-template override.</summary>
    public static IChatTemplate? ByName(string name) => name.ToLowerInvariant() switch
    {
        "chatml" => new ChatMlTemplate(),
        "qwen2" or "qwen2.5" => new ChatMlTemplate(ChatMlTemplate.Qwen25DefaultSystemPrompt),
        "qwen3" => new Qwen3Template(),
        "llama3" => new Llama3Template(),
        "llama2" => new Llama2Template(),
        "deepseek-r1" or "deepseek3" => new DeepSeekR1Template(),
        "deepseek-v3" => new DeepSeekR1Template(openThinking: false),
        _ => null,
    };

    /// <param name="jinjaTemplateFromMetadata">tokenizer.chat_template, or null when the file has none.</param>
    /// <param name="architecture">general.architecture (e.g. "llama", "qwen2", "qwen3").</param>
    /// <param name="vocabularyContains">Optional lookup of a token string in the vocabulary, used when there is no
    /// recognizable template (a vocabulary with &lt;|eot_id|&gt; is Llama 3's).</param>
    public static ChatTemplateMatch Detect(string? jinjaTemplateFromMetadata, string? architecture, Func<string, bool>? vocabularyContains = null)
    {
        var jinja = jinjaTemplateFromMetadata;
        if (!string.IsNullOrWhiteSpace(jinja))
        {
            // DeepSeek first: the R1 distills of Qwen carry ChatML-like tool text in some versions.
            if (Has(jinja, DeepSeekR1Template.AssistantTag))
            {
                var think = Has(jinja, "<think>");
                return new(new DeepSeekR1Template(openThinking: think),
                    think ? "template contains '<｜Assistant｜>' and '<think>' → deepseek-r1"
                          : "template contains '<｜Assistant｜>' without '<think>' → deepseek-v3");
            }
            if (Has(jinja, "<|start_header_id|>") && Has(jinja, "<|eot_id|>"))
                return new(new Llama3Template(), "template contains '<|start_header_id|>' and '<|eot_id|>' → llama3");
            if (Has(jinja, "<|im_start|>"))
            {
                if (Has(jinja, "</think>") || Has(jinja, "enable_thinking"))
                    return new(new Qwen3Template(), "template contains '<|im_start|>' and think handling → qwen3");
                if (Has(jinja, ChatMlTemplate.Qwen25DefaultSystemPrompt))
                    return new(new ChatMlTemplate(ChatMlTemplate.Qwen25DefaultSystemPrompt),
                        "template contains '<|im_start|>' and Qwen2.5's default system prompt → chatml with that prompt");
                return new(new ChatMlTemplate(), "template contains '<|im_start|>' → chatml");
            }
            if (Has(jinja, "[INST]") && Has(jinja, "<<SYS>>"))
                return new(new Llama2Template(), "template contains '[INST]' and '<<SYS>>' → llama2");
        }

        var why = string.IsNullOrWhiteSpace(jinja) ? "no template in metadata" : "template not recognized";
        var arch = architecture?.ToLowerInvariant() ?? "";
        if (arch.StartsWith("qwen3", StringComparison.Ordinal))
            return new(new Qwen3Template(), $"{why}; architecture '{architecture}' → qwen3");
        if (arch.StartsWith("qwen", StringComparison.Ordinal))
            return new(new ChatMlTemplate(), $"{why}; architecture '{architecture}' → chatml");
        if (vocabularyContains?.Invoke("<|eot_id|>") == true)
            return new(new Llama3Template(), $"{why}; vocabulary has '<|eot_id|>' → llama3");
        return new(new ChatMlTemplate(), $"{why}; nothing else matched → chatml (llama.cpp's fallback too)");
    }

    static bool Has(string text, string marker) => text.Contains(marker, StringComparison.Ordinal);
}
