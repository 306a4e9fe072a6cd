namespace Engine;

/// <summary>
/// The model produced a NaN or +infinity logit (checklist F13): the request must end with an error
/// rather than emit a token picked from garbage. -infinity is allowed (it means "masked out").
/// </summary>
public sealed class NonFiniteLogitsException : InvalidOperationException
{
    /// <summary>The first offending vocabulary index.</summary>
    public int TokenId { get; }

    /// <summary>The offending value (NaN or +infinity).</summary>
    public float Value { get; }

    /// <summary>A non-finite logit at <paramref name="tokenId"/>, with the standard message.</summary>
    /// <param name="tokenId">The first offending vocabulary index.</param>
    /// <param name="value">Its value.</param>
    public NonFiniteLogitsException(int tokenId, float value)
        : this(tokenId, value, $"logit of token {tokenId} is {value}; the model produced non-finite output (NaN/+inf), refusing to sample") { }

    /// <summary>A non-finite logit at <paramref name="tokenId"/>, with a message of the caller's.</summary>
    /// <param name="tokenId">The first offending vocabulary index.</param>
    /// <param name="value">Its value.</param>
    /// <param name="message">What went wrong.</param>
    public NonFiniteLogitsException(int tokenId, float value, string message) : base(message)
    {
        TokenId = tokenId;
        Value = value;
    }
}
