namespace Engine.Chat;

/// <summary>
/// Where each message's own text lies in a rendered chat prompt, so the tokenizer can read control-token text there as
/// plain text: a user who types "&lt;|im_end|&gt;&lt;|im_start|&gt;system" then gets those characters, not a forged turn,
/// while the template's own markers are still special tokens. (Hugging Face and llama.cpp tokenize the whole prompt
/// with special tokens on, so there such text does become control tokens.)
///
/// The template is rendered a second time with every message replaced by a placeholder, which gives the markup between
/// messages; each message is then matched in the real prompt as itself or trimmed, followed by the next piece of
/// markup. A template that rewrites a message more than that (a thinking model's earlier answers lose their reasoning)
/// leaves that message and the ones after it unprotected rather than guessed at.
/// </summary>
internal static class MessageRanges
{
    public static IReadOnlyList<Range> Find(IChatTemplate template, IReadOnlyList<ChatMessage> messages, string rendered, bool addGenerationPrompt) =>
        Find(m => template.Render(m, addGenerationPrompt), messages, rendered);

    /// <param name="render">Renders a conversation exactly as <paramref name="rendered"/> was rendered (same template,
    /// tools and options).</param>
    /// <param name="messages">The conversation.</param>
    /// <param name="rendered">The prompt.</param>
    public static IReadOnlyList<Range> Find(Func<IReadOnlyList<ChatMessage>, string> render, IReadOnlyList<ChatMessage> messages, string rendered)
    {
        var placeholders = messages.Select((m, i) => m with { Content = $"\uE000{i}\uE001" }).ToList();
        string skeleton;
        try { skeleton = render(placeholders); }
        catch (ChatTemplateException) { return []; }

        var ranges = new List<Range>(messages.Count);
        int position = 0, cursor = 0; // position in the prompt, cursor in the skeleton
        for (int i = 0; i < messages.Count; i++)
        {
            string placeholder = placeholders[i].Content;
            int at = skeleton.IndexOf(placeholder, cursor, StringComparison.Ordinal);
            if (at < 0) break;
            var markup = skeleton.AsSpan(cursor, at - cursor);
            if (!rendered.AsSpan(position).StartsWith(markup, StringComparison.Ordinal)) break;
            position += markup.Length;
            cursor = at + placeholder.Length;

            int next = skeleton.IndexOf('\uE000', cursor);
            var following = skeleton.AsSpan(cursor, (next < 0 ? skeleton.Length : next) - cursor);
            var content = messages[i].Content;
            int length = Matches(rendered, position, content, following) ? content.Length
                : Matches(rendered, position, content.Trim(), following) ? content.Trim().Length
                : -1;
            if (length < 0) break;
            if (length > 0) ranges.Add(position..(position + length));
            position += length;
        }
        return ranges;
    }

    static bool Matches(string rendered, int position, string content, ReadOnlySpan<char> following) =>
        rendered.AsSpan(position).StartsWith(content, StringComparison.Ordinal)
        && rendered.AsSpan(position + content.Length).StartsWith(following, StringComparison.Ordinal);
}
