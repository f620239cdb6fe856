namespace OllamaContinuity.Failover;

/// <summary>
/// Retry before failover, within budget: a cloud failure that is likely to pass is tried once more on the cloud
/// (which keeps the better model) before the request goes to Ollama. A 429, 503 or 529 with a Retry-After no longer
/// than <see cref="MaxRetryAfter"/> waits that long and retries once; a single transient 5xx or connection reset
/// retries once at once. Never beyond the cloud's total timeout, never after a timeout with no answer (a silent
/// route), never after text was shown, never while the circuit is open.
/// </summary>
public sealed record CloudRetryOptions
{
    /// <summary>The defaults (a Retry-After up to 3 seconds is waited for).</summary>
    public static CloudRetryOptions Default { get; } = new();

    /// <summary>No retry at all.</summary>
    public static CloudRetryOptions None { get; } = new() { Enabled = false };

    /// <summary>False: fail over on the first failure, as before. The default value is true.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>The longest Retry-After waited for before retrying the cloud; longer ones fail over at once. The default value is 3 seconds (0 to 60).</summary>
    public TimeSpan MaxRetryAfter
    {
        get => _maxRetryAfter;
        init => _maxRetryAfter = value >= TimeSpan.Zero && value <= TimeSpan.FromSeconds(60)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxRetryAfter), "MaxRetryAfter must be between 0 and 60 seconds.");
    }

    private readonly TimeSpan _maxRetryAfter = TimeSpan.FromSeconds(3);
}
