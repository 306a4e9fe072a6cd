using Engine.Sampling;

namespace Engine;

/// <summary>How a session samples and when it stops. The defaults are llama.cpp's (temperature 0.8, top-k 40, top-p
/// 0.95, min-p 0.05, no penalties); <see cref="Greedy"/> always takes the most likely token.</summary>
public sealed record GenerateOptions
{
    /// <summary>Tokens to generate at most; null (the default) generates until an end-of-generation token, a stop
    /// sequence, or a full context.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Divides the logits before the final softmax; 0 is greedy (the most likely token, ties to the lower id).</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep only the K most likely tokens; 0 turns it off.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Nucleus sampling: keep the fewest most likely tokens whose probability reaches P; 1 turns it off.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than MinP times the most likely one; 0 turns it off.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>CTRL-style penalty on tokens among the last <see cref="PenaltyLastN"/>; 1 turns it off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI's presence penalty, subtracted once from every recent token's logit; 0 turns it off.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>OpenAI's frequency penalty, subtracted once per recent occurrence; 0 turns it off.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>How many of the most recent tokens the penalties look at; 0 turns every penalty off.</summary>
    public int PenaltyLastN { get; init; } = 64;
    /// <summary>The random seed; the same seed, prompt and options give the same text. Null draws one.</summary>
    public ulong? Seed { get; init; }
    /// <summary>Texts that end the generation when produced; the stop text itself is not returned. At most 16, each at
    /// most 256 characters.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];
    /// <summary>Keep generating past end-of-generation tokens (benchmarks, comparisons with a reference).</summary>
    public bool IgnoreEndOfGeneration { get; init; }
    /// <summary>How many of the most likely alternatives to report with each token (<see cref="GeneratedToken.TopAlternatives"/>),
    /// 0 to 20; 0 (the default) reports none.</summary>
    public int TopLogProbabilities { get; init; }
    /// <summary>For <see cref="Session.ChatAsync"/>: false asks a model whose template can turn its reasoning off
    /// (Qwen3's <c>enable_thinking</c>: an empty think block opens the reply) to answer directly; true or null (the
    /// default) keep the template's behaviour. Templates that always reason (the DeepSeek-R1 distills) ignore it.</summary>
    public bool? EnableThinking { get; init; }

    /// <summary>For <see cref="Session.ChatAsync"/>: functions the model may call. The model's own chat template shows them
    /// to it; its calls come back in <see cref="ChatUpdate.ToolCalls"/>.</summary>
    public IReadOnlyList<ChatTool> Tools { get; init; } = [];
    /// <summary>Whether the model may, must or must not call <see cref="Tools"/>; <see cref="ToolChoice.Auto"/> by default.</summary>
    public ToolChoice ToolChoice { get; init; } = ToolChoice.Auto;
    /// <summary>A grammar in llama.cpp's GBNF that every generated text must match; null for none.</summary>
    public string? Grammar { get; init; }
    /// <summary>A JSON Schema the generated text must be a valid instance of (compiled to a grammar as llama.cpp's
    /// converter does); null for none. <c>{"type": "object"}</c> asks for any JSON object.</summary>
    public System.Text.Json.JsonElement? JsonSchema { get; init; }

    /// <summary>Always the most likely token: the same text every time.</summary>
    public static GenerateOptions Greedy { get; } = new() { Temperature = 0f, TopK = 0, TopP = 1f, MinP = 0f };

    /// <summary>Most alternatives <see cref="TopLogProbabilities"/> may ask for.</summary>
    public const int MaxTopLogProbabilities = 20;

    /// <summary>Tool names are written into the prompt and matched in replies, so they are plain identifiers, each once;
    /// a required function must be one of the tools.</summary>
    internal void ValidateTools()
    {
        ArgumentNullException.ThrowIfNull(Tools);
        ArgumentNullException.ThrowIfNull(ToolChoice);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tool in Tools)
        {
            if (tool?.Name is not { Length: > 0 and <= 64 } name || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
                throw new InvalidSamplingOptionsException($"tool name '{tool?.Name}' must be 1 to 64 letters, digits, '_', '-' or '.'", nameof(Tools));
            if (!names.Add(name)) throw new InvalidSamplingOptionsException($"tool '{name}' is given twice", nameof(Tools));
            if (tool.Parameters is { ValueKind: not System.Text.Json.JsonValueKind.Object })
                throw new InvalidSamplingOptionsException($"the parameters of tool '{name}' must be a JSON Schema object", nameof(Tools));
        }
        if (ToolChoice.RequiresCall && Tools.Count == 0)
            throw new InvalidSamplingOptionsException($"tool choice '{ToolChoice}' needs tools to call", nameof(ToolChoice));
        if (ToolChoice.FunctionName is { } required && !names.Contains(required))
            throw new InvalidSamplingOptionsException($"tool choice names '{required}', which is not one of the tools", nameof(ToolChoice));
        if (ToolChoice.RequiresCall && (Grammar is not null || JsonSchema is not null))
            throw new InvalidSamplingOptionsException("a required tool call and a grammar or JSON schema cannot both constrain the reply", nameof(ToolChoice));
        if (Grammar is not null && JsonSchema is not null)
            throw new InvalidSamplingOptionsException("give a grammar or a JSON schema, not both", nameof(Grammar));
    }

    internal SamplerOptions ToSampler(int vocabularySize)
    {
        if (MaxTokens is < 0)
            throw new InvalidSamplingOptionsException($"max tokens must be 0 or more (null: no limit), got {MaxTokens}", nameof(MaxTokens));
        if (TopLogProbabilities is < 0 or > MaxTopLogProbabilities)
            throw new InvalidSamplingOptionsException($"top log-probabilities must be 0 to {MaxTopLogProbabilities}, got {TopLogProbabilities}", nameof(TopLogProbabilities));
        ValidateTools();
        // Checked here, before anything runs: a grammar or schema that cannot be used never reaches the model.
        if (Grammar is not null) _ = Engine.Grammar.Grammar.Parse(Grammar);
        if (JsonSchema is { } schema)
        {
            try { _ = Engine.Grammar.JsonSchemaToGrammar.Convert(schema.GetRawText()); }
            catch (GrammarException e) { throw new GrammarException(e.Message, nameof(JsonSchema)); }
        }
        return new SamplerOptions
        {
            Temperature = Temperature, TopK = TopK, TopP = TopP, MinP = MinP,
            RepetitionPenalty = RepetitionPenalty, PresencePenalty = PresencePenalty, FrequencyPenalty = FrequencyPenalty,
            PenaltyLastN = PenaltyLastN, Seed = Seed,
        }.Validate(vocabularySize);
    }
}
