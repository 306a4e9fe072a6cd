namespace Engine.Sampling;

/// <summary>
/// Sampling parameters of one request. Neutral values switch a stage off, so the default instance
/// samples from the model's plain softmax distribution (temperature 1, nothing filtered).
/// Call <see cref="Validate"/> before use; <see cref="Sampler"/> does so itself.
/// </summary>
internal sealed record SamplerOptions
{
    /// <summary>Divides the logits before the final softmax; 0 means greedy (argmax, ties to the lowest id).</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the K most likely tokens; 0 = off. Values above the vocabulary size are clamped.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus: keep the smallest set of most likely tokens whose probability reaches P; 1 = off.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Drop tokens whose probability is below MinP × (probability of the best token); 0 = off.</summary>
    public float MinP { get; init; }

    /// <summary>CTRL-style penalty for tokens in the last <see cref="PenaltyLastN"/>: positive logits are divided
    /// by it, negative ones multiplied; 1 = off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>OpenAI presence penalty: subtracted once from the logit of every token seen in the window; 0 = off.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>OpenAI frequency penalty: subtracted once per occurrence in the window; 0 = off.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>How many of the most recent tokens the penalties look at; 0 disables all penalties.</summary>
    public int PenaltyLastN { get; init; } = 64;

    /// <summary>RNG seed; the same seed with the same logits gives the same tokens. Null = a fresh seed from the
    /// OS (the seed actually used is reported by <see cref="Sampler.Seed"/> so a run can be replayed).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Optional grammar constraint (GBNF or a JSON schema compiled for the tokenizer's vocabulary): tokens the
    /// grammar does not allow get -inf before every other stage, and the sampler advances the grammar on the token it
    /// picks. Null = unconstrained. Each <see cref="Sampler"/> follows the grammar from its start.</summary>
    public Engine.Grammar.GrammarConstraint? Grammar { get; init; }

    /// <summary>Greedy decoding: always the most likely token.</summary>
    public static SamplerOptions Greedy { get; } = new() { Temperature = 0f };

    /// <summary>llama.cpp's command-line defaults (temp 0.8, top-k 40, top-p 0.95, min-p 0.05).</summary>
    public static SamplerOptions LlamaCppDefaults { get; } =
        new() { Temperature = 0.8f, TopK = 40, TopP = 0.95f, MinP = 0.05f };

    /// <summary>
    /// Checks every field and returns the options normalized for <paramref name="vocabSize"/>
    /// (top-k above the vocabulary clamped, as vllm-spyre learned the hard way).
    /// </summary>
    /// <exception cref="InvalidSamplingOptionsException">A field is out of range; ParamName names it.</exception>
    public SamplerOptions Validate(int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);

        // Written as !(x >= 0) so that NaN fails every check.
        if (!(Temperature >= 0f) || float.IsInfinity(Temperature))
            throw Bad(nameof(Temperature), $"temperature must be a finite number >= 0, got {Temperature}");
        if (TopK < 0)
            throw Bad(nameof(TopK), $"top_k must be >= 0 (0 = off), got {TopK}");
        if (!(TopP > 0f && TopP <= 1f))
            throw Bad(nameof(TopP), $"top_p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0f && MinP <= 1f))
            throw Bad(nameof(MinP), $"min_p must be in [0, 1], got {MinP}");
        if (!float.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0f)
            throw Bad(nameof(RepetitionPenalty), $"repetition_penalty must be a finite number > 0 (1 = off), got {RepetitionPenalty}");
        if (!float.IsFinite(PresencePenalty))
            throw Bad(nameof(PresencePenalty), $"presence_penalty must be finite, got {PresencePenalty}");
        if (!float.IsFinite(FrequencyPenalty))
            throw Bad(nameof(FrequencyPenalty), $"frequency_penalty must be finite, got {FrequencyPenalty}");
        if (PenaltyLastN < 0)
            throw Bad(nameof(PenaltyLastN), $"penalty_last_n must be >= 0 (0 = off), got {PenaltyLastN}");

        return TopK > vocabSize ? this with { TopK = vocabSize } : this;
    }

    static InvalidSamplingOptionsException Bad(string field, string message) => new(message, field);
}
