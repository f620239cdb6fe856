namespace OllamaContinuity.Failover;

/// <summary>Why an attempt did not succeed. <see cref="FailoverClassifier"/> is the one place that decides.</summary>
public enum FailureClass
{
    None,
    // Transport
    ConnectionRefused,
    ConnectionReset,
    NameResolution,
    Unreachable,
    Tls,
    ConnectTimeout,
    // Time
    FirstTokenTimeout,
    StallTimeout,
    Timeout,
    // HTTP status
    ServerError,
    RequestTimeout,
    Conflict,
    TooEarly,
    RateLimited,
    QuotaExhausted,
    Overloaded,
    AuthenticationFailed,
    PermissionDenied,
    BillingError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnprocessableEntity,
    UnexpectedStatus,
    ContentPolicy,
    // Body
    MalformedResponse,
    EmptyResponse,
    StreamError,
    StreamTruncated,
    /// <summary>A read bound was crossed (longest line, whole answer, decompression ratio); the detail names it.</summary>
    ResponseTooLarge,
    // Decided before sending
    CircuitOpen,
    CoolingDown,
    Contingency,
    NotConfigured,
    FailoverDeclined,
}

/// <summary>The verdict on one failed attempt.</summary>
public sealed record FailureDecision(FailureClass Class, bool FailOver, string Detail)
{
    /// <summary>Counts as a cloud-side failure for the circuit breaker.</summary>
    public bool CountsForBreaker { get; init; }
    /// <summary>A configuration problem to warn loudly about (401/403/402).</summary>
    public bool Warn { get; init; }
    /// <summary>How long the server asked us to stay away (Retry-After, retry-after-ms).</summary>
    public TimeSpan? RetryAfter { get; init; }
    public int? StatusCode { get; init; }
}
