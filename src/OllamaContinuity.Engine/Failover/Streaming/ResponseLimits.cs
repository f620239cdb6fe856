namespace OllamaContinuity.Failover.Streaming;

/// <summary>The bounds on everything read from a backend, so that a hostile or broken server cannot exhaust memory.</summary>
public sealed record ResponseLimits
{
    /// <summary>The default whole-answer bound: 16 MiB.</summary>
    public const int DefaultMaxResponseBytes = 16 * 1024 * 1024;

    /// <summary>The longest line (NDJSON) or SSE line the stream reader keeps. The default value is 1 MiB.</summary>
    public int MaxLineBytes { get; init; } = 1024 * 1024;

    /// <summary>The whole answer, after decompression (a stream or a body). The default value is 16 MiB.</summary>
    public int MaxResponseBytes { get; init; } = DefaultMaxResponseBytes;

    /// <summary>
    /// The largest ratio of decompressed to compressed bytes, checked once <see cref="RatioFloorBytes"/> were
    /// decompressed (compressed text is rarely above 20:1; a gzip bomb is about 1000:1). The default value is 100.
    /// </summary>
    public int MaxDecompressionRatio { get; init; } = 100;

    /// <summary>Decompressed bytes before the ratio is checked (small answers compress well). The default value is 1 MiB.</summary>
    public int RatioFloorBytes { get; init; } = 1024 * 1024;

    /// <summary>An error body is read up to this size and the rest ignored. The default value is 64 KiB.</summary>
    public int MaxErrorBodyBytes { get; init; } = 64 * 1024;

    public static ResponseLimits Default { get; } = new();
}

/// <summary>A read crossed one of the <see cref="ResponseLimits"/>: a failure of that backend, named in <see cref="Exception.Message"/>.</summary>
public sealed class ResponseLimitExceededException(string bound, string message) : IOException(message)
{
    /// <summary>Which bound: MaxLineBytes, MaxResponseBytes, or MaxDecompressionRatio.</summary>
    public string Bound { get; } = bound;
}
