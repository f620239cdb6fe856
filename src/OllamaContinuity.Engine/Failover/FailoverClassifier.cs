using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Authentication;
using OllamaContinuity.Http;

namespace OllamaContinuity.Failover;

/// <summary>
/// The one place that decides whether a failure fails over, counts against the cloud's circuit, or is the
/// request's own fault. Everything else asks here.
/// </summary>
public static class FailoverClassifier
{
    /// <summary>The longest Retry-After we honour. The default value is 10 minutes.</summary>
    public static TimeSpan MaxRetryAfter { get; } = TimeSpan.FromMinutes(10);

    /// <summary>Classifies an HTTP status with the error body the server sent (already parsed for its code).</summary>
    public static FailureDecision FromStatus(int status, HttpResponseHeaders? headers, string? errorCode, string? errorMessage)
    {
        var msg = Trim(errorMessage);
        var retryAfter = headers is null ? null : RetryAfter(headers);
        FailureDecision Over(FailureClass c, bool breaker = true, bool warn = false) =>
            new(c, true, $"HTTP {status}{(msg is null ? "" : ": " + msg)}") { CountsForBreaker = breaker, Warn = warn, RetryAfter = retryAfter, StatusCode = status };
        FailureDecision Stop(FailureClass c) =>
            new(c, false, $"HTTP {status}{(msg is null ? "" : ": " + msg)}") { StatusCode = status };

        if (IsContentPolicy(errorCode))
        {
            return Stop(FailureClass.ContentPolicy);
        }

        return status switch
        {
            429 when errorCode is "insufficient_quota" || (errorCode is "rate_limit_error" && msg?.Contains("spend", StringComparison.OrdinalIgnoreCase) == true)
                => Over(FailureClass.QuotaExhausted, warn: true),
            // Anthropic reports an exhausted account as 400 invalid_request_error, in these words.
            400 when IsAnthropicAccountLimit(errorMessage) => Over(FailureClass.QuotaExhausted, warn: true),
            429 => Over(FailureClass.RateLimited),
            529 => Over(FailureClass.Overloaded),
            408 => Over(FailureClass.RequestTimeout),
            409 => Over(FailureClass.Conflict),
            425 => Over(FailureClass.TooEarly),
            401 => Over(FailureClass.AuthenticationFailed, warn: true),
            403 => Over(FailureClass.PermissionDenied, warn: true),
            402 => Over(FailureClass.BillingError, warn: true),
            >= 500 and <= 599 => Over(FailureClass.ServerError),
            400 => Stop(FailureClass.BadRequest),
            404 => Stop(FailureClass.NotFound),
            413 => Stop(FailureClass.PayloadTooLarge),
            422 => Stop(FailureClass.UnprocessableEntity),
            >= 400 and <= 499 => Stop(FailureClass.BadRequest),
            // 1xx/3xx that HttpClient did not follow: the endpoint is not speaking the API.
            _ => Over(FailureClass.UnexpectedStatus),
        };
    }

    /// <summary>Classifies an exception thrown while sending or reading. <paramref name="phase"/> names the watchdog that fired, if any.</summary>
    public static FailureDecision FromException(Exception ex, TimeoutPhase phase, bool textEmitted)
    {
        FailureDecision D(FailureClass c, string detail) =>
            new(c, !textEmitted, detail) { CountsForBreaker = true };

        if (ex is OperationCanceledException)
        {
            return phase switch
            {
                TimeoutPhase.FirstToken => D(FailureClass.FirstTokenTimeout, "no first token before the first-token timeout"),
                TimeoutPhase.Stall => D(FailureClass.StallTimeout, "the stream stalled mid-way"),
                _ => D(FailureClass.Timeout, "the backend did not finish before its timeout"),
            };
        }

        for (var e = ex; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case ConnectTimeoutException ct:
                    return D(FailureClass.ConnectTimeout, ct.Message);
                case AuthenticationException:
                    return D(FailureClass.Tls, "TLS handshake failed: " + Trim(e.Message));
                case SocketException se:
                    return se.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => D(FailureClass.ConnectionRefused, "connection refused"),
                        SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown
                            => D(FailureClass.ConnectionReset, "connection reset by the server"),
                        SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData
                            => D(FailureClass.NameResolution, "name resolution failed"),
                        SocketError.TimedOut => D(FailureClass.ConnectTimeout, "connect timed out"),
                        _ => D(FailureClass.Unreachable, "network unreachable (" + se.SocketErrorCode + ")"),
                    };
            }
        }

        if (ex is HttpRequestException hre)
        {
            return hre.HttpRequestError switch
            {
                HttpRequestError.NameResolutionError => D(FailureClass.NameResolution, "name resolution failed"),
                HttpRequestError.SecureConnectionError => D(FailureClass.Tls, "TLS handshake failed"),
                HttpRequestError.ConnectionError => D(FailureClass.Unreachable, "connection failed"),
                HttpRequestError.ResponseEnded => D(textEmitted ? FailureClass.StreamTruncated : FailureClass.ConnectionReset, "the server closed the connection before the response was complete"),
                HttpRequestError.InvalidResponse => D(FailureClass.MalformedResponse, "the server sent an invalid HTTP response"),
                _ => D(FailureClass.ConnectionReset, Trim(hre.Message) ?? "HTTP request failed"),
            };
        }

        if (ex is IOException or ObjectDisposedException)
        {
            return D(textEmitted ? FailureClass.StreamTruncated : FailureClass.ConnectionReset, "the connection broke while reading the response");
        }

        if (ex is System.Text.Json.JsonException or FormatException or InvalidDataException)
        {
            return D(FailureClass.MalformedResponse, "the response could not be parsed");
        }

        return D(FailureClass.MalformedResponse, ex.GetType().Name);
    }

    /// <summary>A body-level problem found after a 200: malformed, empty, an in-band error, a missing terminator, a refusal.</summary>
    public static FailureDecision FromBody(FailureClass cls, string detail, bool textEmitted) => cls switch
    {
        FailureClass.ContentPolicy => new(cls, false, detail),
        _ => new(cls, !textEmitted, detail) { CountsForBreaker = true },
    };

    /// <summary>Parses <c>retry-after-ms</c> (OpenAI) and <c>Retry-After</c> (seconds or an HTTP date), capped at <see cref="MaxRetryAfter"/>.</summary>
    public static TimeSpan? RetryAfter(HttpResponseHeaders headers, DateTimeOffset? now = null)
    {
        TimeSpan? found = null;
        if (headers.TryGetValues("retry-after-ms", out var ms) &&
            double.TryParse(ms.FirstOrDefault(), NumberStyles.Float, CultureInfo.InvariantCulture, out var msValue) && msValue >= 0)
        {
            found = TimeSpan.FromMilliseconds(msValue);
        }
        else if (headers.RetryAfter is { } ra)
        {
            if (ra.Delta is { } delta)
            {
                found = delta;
            }
            else if (ra.Date is { } date)
            {
                var d = date - (now ?? DateTimeOffset.UtcNow);
                found = d > TimeSpan.Zero ? d : TimeSpan.Zero;
            }
        }

        return found is { } f && f > MaxRetryAfter ? MaxRetryAfter : found;
    }

    private static bool IsAnthropicAccountLimit(string? message) =>
        message is not null &&
        (message.Contains("credit balance is too low", StringComparison.OrdinalIgnoreCase) ||
         message.Contains("reached your specified API usage limits", StringComparison.OrdinalIgnoreCase));

    private static bool IsContentPolicy(string? code) =>
        code is "content_policy_violation" or "content_filter" or "content_filtered" or "moderation_blocked" or "refusal";

    private static string? Trim(string? s)
    {
        if (string.IsNullOrWhiteSpace(s))
        {
            return null;
        }

        s = s.ReplaceLineEndings(" ").Trim();
        return s.Length > 300 ? s[..300] + "..." : s;
    }
}

/// <summary>Which watchdog was armed when an attempt was cancelled.</summary>
public enum TimeoutPhase
{
    /// <summary>The overall per-backend timeout.</summary>
    Total,
    /// <summary>Waiting for the first token of a stream.</summary>
    FirstToken,
    /// <summary>Waiting for the next chunk of a stream that has started.</summary>
    Stall,
}
