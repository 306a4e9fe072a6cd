using Engine.Tokenizers;

namespace Engine.Grammar;

/// <summary>
/// A grammar bound to a vocabulary: what <see cref="Sampling.SamplerOptions.Grammar"/> holds. Immutable from the
/// outside and shareable between requests and threads (its automaton and mask cache grow as generations explore it,
/// under a lock). Each generation gets its own <see cref="GrammarMatcher"/> via <see cref="CreateMatcher"/>.
/// </summary>
internal sealed class GrammarConstraint
{
    public GrammarConstraint(Grammar grammar, TokenTrie trie)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentNullException.ThrowIfNull(trie);
        Automaton = new GrammarAutomaton(grammar, trie);
    }

    /// <summary>Compiles GBNF text for <paramref name="tokenizer"/>'s vocabulary.</summary>
    /// <exception cref="GrammarException">The grammar is invalid.</exception>
    public static GrammarConstraint FromGbnf(string gbnf, ITokenizer tokenizer, string root = "root") =>
        new(Grammar.Parse(gbnf, root), TokenTrie.For(tokenizer));

    /// <summary>Compiles a JSON schema (llama.cpp's converter) for <paramref name="tokenizer"/>'s vocabulary.</summary>
    /// <exception cref="GrammarException">The schema uses an unsupported keyword or is invalid.</exception>
    public static GrammarConstraint FromJsonSchema(string schemaJson, ITokenizer tokenizer) =>
        FromGbnf(JsonSchemaToGrammar.Convert(schemaJson), tokenizer);

    /// <summary>Any JSON object (OpenAI's response_format json_object, Ollama's format "json").</summary>
    public static GrammarConstraint JsonObject(ITokenizer tokenizer) => FromGbnf(JsonSchemaToGrammar.JsonObjectGrammar, tokenizer);

    public GrammarAutomaton Automaton { get; }
    public Grammar Grammar => Automaton.Grammar;
    public int VocabSize => Automaton.Trie.VocabSize;

    public GrammarMatcher CreateMatcher() => new(Automaton);
}

/// <summary>
/// One generation's position in a grammar, token by token. Not thread-safe (one per stream, like the sampler).
/// </summary>
internal sealed class GrammarMatcher
{
    readonly GrammarAutomaton _automaton;
    int _state;

    public GrammarMatcher(GrammarAutomaton automaton)
    {
        _automaton = automaton;
        _state = automaton.Start;
    }

    /// <summary>True once an end-of-generation token was accepted.</summary>
    public bool IsEnded { get; private set; }

    /// <summary>True when the text so far is a complete sentence of the grammar (an end-of-generation token is allowed).</summary>
    public bool IsComplete => !IsEnded && _automaton.CanEnd(_state);

    /// <summary>The allowed tokens now, a bit per token id (cached and shared: do not modify).</summary>
    public ReadOnlySpan<ulong> AllowedTokens => IsEnded ? new ulong[_automaton.MaskWords] : _automaton.Mask(_state);

    public bool IsAllowed(int token)
    {
        if (IsEnded || (uint)token >= (uint)_automaton.Trie.VocabSize) return false;
        return (_automaton.Mask(_state)[token >> 6] & (1UL << token)) != 0;
    }

    /// <summary>Sets every disallowed logit to -inf (ids beyond the tokenizer's vocabulary included).</summary>
    /// <returns>How many tokens stay allowed.</returns>
    /// <exception cref="GrammarException">No token is allowed (the grammar is finished, or no token of this
    /// vocabulary can continue it).</exception>
    public int Apply(Span<float> logits)
    {
        if (IsEnded) throw new GrammarException("the grammar already ended (an end-of-generation token was accepted); no token is allowed");
        var mask = _automaton.Mask(_state);
        int vocab = Math.Min(logits.Length, _automaton.Trie.VocabSize);
        int allowed = 0;
        for (int w = 0; w * 64 < vocab; w++)
        {
            ulong bits = mask[w];
            int baseId = w * 64;
            int count = Math.Min(64, vocab - baseId);
            if (count == 64 && bits == ulong.MaxValue) { allowed += 64; continue; }
            if (bits == 0) { logits.Slice(baseId, count).Fill(float.NegativeInfinity); continue; }
            for (int k = 0; k < count; k++)
            {
                if ((bits & (1UL << k)) == 0) logits[baseId + k] = float.NegativeInfinity;
                else allowed++;
            }
        }
        if (logits.Length > vocab) logits[vocab..].Fill(float.NegativeInfinity);
        if (allowed == 0)
            throw new GrammarException("the grammar allows no token of this vocabulary here: generation cannot continue");
        return allowed;
    }

    /// <summary>Advances on the chosen token.</summary>
    /// <exception cref="GrammarException">The token is not allowed here.</exception>
    public void Accept(int token)
    {
        if (IsEnded) throw new GrammarException($"token {token} after the grammar ended");
        var trie = _automaton.Trie;
        if ((uint)token >= (uint)trie.VocabSize) throw new GrammarException($"token {token} is outside the grammar's vocabulary ({trie.VocabSize})");
        if (trie.IsEndOfGeneration[token])
        {
            if (!_automaton.CanEnd(_state)) throw new GrammarException($"end-of-generation token {token} received while the grammar is incomplete");
            IsEnded = true;
            return;
        }
        var bytes = trie.Bytes[token];
        int next = bytes.Length == 0 ? -1 : _automaton.Advance(_state, bytes);
        if (next < 0) throw new GrammarException($"token {token} does not match the grammar here");
        _state = next;
    }

    /// <summary>Advances on raw text bytes (e.g. a forced prefix); false, leaving the state unchanged, if they do not match.</summary>
    public bool TryAcceptBytes(ReadOnlySpan<byte> bytes)
    {
        if (IsEnded) return false;
        int next = _automaton.Advance(_state, bytes);
        if (next < 0) return false;
        _state = next;
        return true;
    }

    /// <summary>Back to the start of the grammar.</summary>
    public void Reset()
    {
        _state = _automaton.Start;
        IsEnded = false;
    }
}
