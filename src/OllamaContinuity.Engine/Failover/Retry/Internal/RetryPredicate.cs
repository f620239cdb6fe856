namespace OllamaContinuity.Failover.Retry;

/// <summary>
/// The one place that decides whether a failed cloud attempt is tried again, and after how long. Null: fail over.
/// </summary>
internal static class RetryPredicate
{
    /// <summary>A retry needs at least this much of the cloud's total timeout left after its wait.</summary>
    internal static readonly TimeSpan MinimumBudget = TimeSpan.FromMilliseconds(250);

    /// <param name="result">The failed attempt.</param>
    /// <param name="elapsed">Time spent on the cloud so far.</param>
    /// <param name="budget">The cloud's total timeout (never exceeded).</param>
    public static TimeSpan? Delay(AttemptResult result, TimeSpan elapsed, TimeSpan budget, CloudRetryOptions options)
    {
        if (!options.Enabled || result.Succeeded || result.TextEmitted || result.Decision is not { FailOver: true, CountsForBreaker: true } d)
        {
            return null;
        }

        TimeSpan? delay = d.Class switch
        {
            // Asked to come back later: only when it says when, and soon enough.
            FailureClass.RateLimited or FailureClass.Overloaded => d.RetryAfter is { } ra && ra <= options.MaxRetryAfter ? ra : null,
            FailureClass.ServerError when d.RetryAfter is { } ra => ra <= options.MaxRetryAfter ? ra : null,
            // A one-off 5xx (500, 502, 503, 504 without Retry-After) or a reset connection: once, at once.
            FailureClass.ServerError or FailureClass.ConnectionReset => TimeSpan.Zero,
            // Timeouts (silent routes), refused connections, quota, credentials, broken bodies: fail over now.
            _ => null,
        };
        return delay is { } wait && elapsed + wait + MinimumBudget <= budget ? wait : null;
    }
}
