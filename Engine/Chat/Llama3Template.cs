using System.Text;

namespace Engine.Chat;

/// <summary>
/// Llama 3 / 3.x: <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c> with the
/// content trimmed (the official template applies <c>| trim</c>), generation prompt
/// <c>&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c>. The official template writes
/// <c>&lt;|begin_of_text|&gt;</c> itself; here the tokenizer adds it (see <see cref="IChatTemplate"/>), so the
/// token sequence is identical. Llama 3.1's extras (dated default system prompt, tool calling) are not rendered.
/// </summary>
internal sealed class Llama3Template : IChatTemplate
{
    public string Name => "llama3";
    public IReadOnlyList<string> StopStrings { get; } = ["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"];
    public string? BosToken => "<|begin_of_text|>";
    public bool GenerationPromptOpensThinking => false;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ChatRoles.ValidateAll(messages);
        var sb = new StringBuilder();
        foreach (var m in messages)
            sb.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n")
              .Append(m.Content.Trim()).Append("<|eot_id|>");
        if (addGenerationPrompt) sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        return sb.ToString();
    }
}
