using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using OllamaContinuity.Failover;
using OllamaContinuity.Gateway.Formats;

namespace OllamaContinuity.Gateway;

/// <summary>
/// One chat request, whatever its API: read and translate it at the edge, send it through the failover engine,
/// and translate the engine's answer (or stream) back. Who served it and why goes in response headers only.
/// </summary>
internal sealed class ChatHandler(FailoverEngine engine, BackendPlan plan, GatewayOptions options, GatewayMetrics metrics, ILogger logger)
{
    public const string BackendHeader = "X-OllamaContinuity-Backend";
    public const string ReasonHeader = "X-OllamaContinuity-Failover-Reason";
    public const string RequestIdHeader = "X-OllamaContinuity-Request-Id";
    public const string WorkflowHeader = "X-OllamaContinuity-Workflow";
    public const string ModelAlias = "ollamacontinuity";

    /// <summary>The model names clients may ask for; every one is served by the same route (cloud, then Ollama).</summary>
    public IReadOnlyList<string> Models { get; } =
        new[] { ModelAlias, plan.Cloud?.Model }.Concat(plan.Ollama.Select(o => o.Model)).Concat(options.ModelAliases)
            .Where(m => !string.IsNullOrWhiteSpace(m)).Select(m => m!).Distinct(StringComparer.Ordinal).ToArray();

    public async Task HandleAsync(HttpContext ctx, ApiFormat format)
    {
        var requestId = (string)ctx.Items[GatewayApp.RequestIdKey]!;
        var t0 = Stopwatch.GetTimestamp();
        var timings = GatewayTimings.Current;
        if (timings is not null && ctx.Items[GatewayApp.StartedKey] is long entered)
        {
            timings.Add(GatewayTimings.Section.Pipeline, entered, t0);
        }

        var backend = "none";
        string? reason = null;
        var status = 200;
        metrics.Started();
        try
        {
            var call = await ReadAsync(ctx, format).ConfigureAwait(false);
            timings?.Add(GatewayTimings.Section.Parse, t0, Stopwatch.GetTimestamp());
            if (!Models.Contains(call.Model, StringComparer.Ordinal))
            {
                throw new GatewayException(404, $"The model '{Shorten(call.Model)}' is not served by this gateway. Models: {string.Join(", ", Models)}.", "model_not_found");
            }

            var client = ctx.Items[GatewayApp.ClientKey] as ClientToken;
            var workflow = client?.Workflow;
            if (ctx.Request.Headers.TryGetValue(WorkflowHeader, out var wh))
            {
                var value = wh.ToString();
                if (wh.Count != 1 || !ClientTokens.IsValidWorkflow(value))
                {
                    throw new GatewayException(400, $"The {WorkflowHeader} header must be one name of letters, digits, '.', '-' or '_' (at most 64 characters).", "invalid_workflow");
                }

                workflow = value;
            }

            var request = new AiRequest
            {
                Messages = call.Messages,
                SystemPrompt = call.SystemPrompt,
                Workflow = workflow,
                // Streamed from the backend when the client streams (first-token and stall watchdogs); a whole
                // answer otherwise (the provider's token counts; the total timeout bounds a silent provider).
                Stream = call.Stream,
                MaxTokens = call.MaxTokens,
                Temperature = call.Temperature,
                RequestId = requestId,
                // A client holds whatever text was streamed: a broken cloud stream is continued by Ollama (the
                // partial answer as the last assistant message), so the text the client assembles stays whole.
                StreamRescue = call.Stream ? StreamRescueMode.Continue : null,
            };

            if (!call.Stream)
            {
                var observer = new GatewayObserver(null, Warn);
                var http = timings is null ? null : GatewayTimings.WatchHttp();
                var tSend = Stopwatch.GetTimestamp();
                var response = await engine.SendAsync(request, plan, observer, ctx.RequestAborted).ConfigureAwait(false);
                var tSent = Stopwatch.GetTimestamp();
                timings?.AddEngine(tSend, observer.AttemptStartedAt, http!, tSent);

                (backend, reason) = (response.Backend, NullIfEmpty(response.FailoverReason));
                SetRouteHeaders(ctx, backend, reason);
                var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024 + response.Text.Length * 2);
                ApiFormat.WriteJson(buffer, w => format.WriteWhole(w, response, call));
                ctx.Response.ContentType = "application/json; charset=utf-8";
                ctx.Response.ContentLength = buffer.WrittenCount;
                await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
                timings?.Add(GatewayTimings.Section.Write, tSent, Stopwatch.GetTimestamp());
                return;
            }

            (backend, reason, status) = await StreamAsync(ctx, format, call, request).ConfigureAwait(false);
        }
        catch (GatewayException e)
        {
            status = e.Status;
            metrics.Rejected(e.Status == 413 ? "too_large" : e.Status == 404 ? "unknown_model" : "bad_request");
            await GatewayApp.WriteErrorAsync(ctx, format, e.Status, e.Message, e.Code).ConfigureAwait(false);
        }
        catch (AiRequestException e)
        {
            string? code;
            string message;
            (status, code, message) = Map(e);
            (backend, reason) = RouteOf(e);
            SetRouteHeaders(ctx, backend == "none" ? null : backend, reason);
            await GatewayApp.WriteErrorAsync(ctx, format, status, message, code).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            status = 499; // the client went away
        }
        finally
        {
            var end = Stopwatch.GetTimestamp();
            metrics.Finished(format.Name, backend, status, reason, Stopwatch.GetElapsedTime(t0, end).TotalSeconds);
            if (timings is not null && ctx.Items[GatewayApp.StartedKey] is long entered2)
            {
                timings.Add(GatewayTimings.Section.Total, entered2, end);
            }
        }
    }

    private async Task<ChatCall> ReadAsync(HttpContext ctx, ApiFormat format)
    {
        if (ctx.Request.ContentLength > options.MaxBodyBytes)
        {
            throw TooLarge();
        }

        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(ctx.Request.Body, new JsonDocumentOptions { MaxDepth = 64 }, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            throw new GatewayException(400, "The request body is not valid JSON.", "invalid_json");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge();
        }
        catch (BadHttpRequestException e)
        {
            throw new GatewayException(e.StatusCode is >= 400 and < 500 ? e.StatusCode : 400, "The request body could not be read: " + e.Message, "bad_request");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new GatewayException(400, "The request body must be a JSON object.", "invalid_json");
            }

            return format.Parse(doc.RootElement);
        }

        GatewayException TooLarge() => new(413, $"The request body is larger than the gateway's limit of {options.MaxBodyBytes} bytes.", "request_too_large");
    }

    /// <summary>Streams the engine's tokens to the client as they arrive; headers go out with the first token.</summary>
    private async Task<(string Backend, string? Reason, int Status)> StreamAsync(HttpContext ctx, ApiFormat format, ChatCall call, AiRequest request)
    {
        // Synchronous continuations: a token the engine hands over is written on the engine's own thread, inside
        // OnToken, instead of waking this loop on another pool thread for every token. It is flushed when the engine
        // says nothing more is ready from the backend (a null item, OnStreamIdle): pieces that arrived together go out
        // in one send, and none waits for the backend's next piece. While a flush is pending (a slow client), this loop
        // is not waiting on the channel, so tokens queue up and go out together afterwards.
        var channel = Channel.CreateUnbounded<string?>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });
        var observer = new GatewayObserver(channel.Writer, Warn);
        var timings = GatewayTimings.Current;
        var tSend = Stopwatch.GetTimestamp();
        var send = SendThenCompleteAsync(request, observer, channel.Writer, ctx.RequestAborted);
        var state = new StreamState(request.RequestId, call.Model, DateTimeOffset.UtcNow) { IncludeUsage = call.IncludeUsage };
        var output = ctx.Response.BodyWriter;
        var started = false;
        var backend = "none";
        string? reason = null;

        void Start(string b, string? r)
        {
            (backend, reason) = (b, r);
            SetRouteHeaders(ctx, b, r);
            ctx.Response.ContentType = format.StreamContentType;
            ctx.Response.Headers.CacheControl = "no-cache";
            ctx.Response.Headers["X-Accel-Buffering"] = "no";
            format.StreamStart(output, state);
            started = true;
            if (timings is not null)
            {
                var now = Stopwatch.GetTimestamp();
                timings.Add(GatewayTimings.Section.StreamFirstToken, tSend, now);
                tSend = now;
            }
        }

        try
        {
            var unflushed = false;
            await foreach (var token in channel.Reader.ReadAllAsync(ctx.RequestAborted).ConfigureAwait(false))
            {
                if (token is null)
                {
                    // The backend has nothing more ready. More already queued (behind a slow flush) goes out with this.
                    if (unflushed && !channel.Reader.TryPeek(out _))
                    {
                        unflushed = false;
                        await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
                    }

                    continue;
                }

                if (!started)
                {
                    Start(observer.Current?.Role.ToString() ?? "Cloud", observer.Reason);
                }

                format.StreamDelta(output, state, token);
                unflushed = true;
            }

            var response = await send.ConfigureAwait(false);
            if (observer.RestartedAfterText && started)
            {
                // Ollama could not continue the broken text and answered from scratch: appending that would duplicate
                // the start of the answer in the client's text, so the stream ends in an error the SDK raises.
                format.StreamError(output, state, 502, "The answer broke after text was sent and could only be restarted from scratch, not continued; send the request again.", "stream_interrupted");
                await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
                return (response.Backend, NullIfEmpty(response.FailoverReason) ?? reason, 502);
            }

            if (!started)
            {
                Start(response.Backend, NullIfEmpty(response.FailoverReason));
                if (response.Text.Length > 0)
                {
                    format.StreamDelta(output, state, response.Text);
                }
            }

            format.StreamEnd(output, state, response);
            await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            timings?.Add(GatewayTimings.Section.StreamRest, tSend, Stopwatch.GetTimestamp());
            return (response.Backend, NullIfEmpty(response.FailoverReason) ?? reason, 200);
        }
        catch (AiRequestException e) when (started)
        {
            // Text is already on the wire: an in-band error the client's SDK raises, never a clean end.
            var (status, code, message) = Map(e);
            format.StreamError(output, state, status, message, code);
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            return (backend, RouteOf(e).Reason ?? reason, status);
        }
        finally
        {
            // Whatever happened above, the engine's task is observed (its exception is rethrown above when it matters).
            _ = send.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    private async Task<AiResponse> SendThenCompleteAsync(AiRequest request, IFailoverObserver observer, ChannelWriter<string?> writer, CancellationToken ct)
    {
        try
        {
            return await engine.SendAsync(request, plan, observer, ct).ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    /// <summary>The status, code and message a client gets when the engine produced no answer.</summary>
    internal static (int Status, string? Code, string Message) Map(AiRequestException e)
    {
        var last = e.Attempts.Count > 0 ? e.Attempts[^1] : null;
        var upstream = last?.StatusCode is int s and >= 400 and < 500 ? s : (int?)null;
        return e.Failure switch
        {
            // Passed through as the provider said it: same status, same message, never routed around.
            AiRequestFailure.ContentPolicyRefusal => (upstream ?? 400, "content_policy_violation", StripStatus(last?.Detail) ?? e.Message),
            AiRequestFailure.RequestRejected => (upstream ?? 400, null, StripStatus(last?.Detail) ?? e.Message),
            AiRequestFailure.StreamInterrupted => (502, "stream_interrupted", e.Message),
            AiRequestFailure.FailoverNotApproved => (503, "failover_not_approved", e.Message),
            _ => (502, "all_backends_failed", e.Message),
        };
    }

    private static (string Backend, string? Reason) RouteOf(AiRequestException e)
    {
        var cloud = e.Attempts.FirstOrDefault(a => a.Backend == nameof(BackendRole.Cloud));
        var reason = cloud is { Outcome: not "Success" } && e.Attempts.Count > 1 ? cloud.FailureClass : null;
        var last = e.Attempts.LastOrDefault(a => a.Outcome != "Skipped");
        return (last?.Backend ?? "none", string.IsNullOrEmpty(reason) ? null : reason);
    }

    private static string? StripStatus(string? detail)
    {
        if (detail is null)
        {
            return null;
        }

        // The engine's detail reads "HTTP 400: <the provider's message>".
        if (detail.StartsWith("HTTP ", StringComparison.Ordinal) && detail.IndexOf(": ", StringComparison.Ordinal) is var i and > 0 && i < 10)
        {
            return detail[(i + 2)..];
        }

        return detail;
    }

    private static void SetRouteHeaders(HttpContext ctx, string? backend, string? reason)
    {
        if (ctx.Response.HasStarted)
        {
            return;
        }

        if (backend is not null)
        {
            ctx.Response.Headers[BackendHeader] = backend;
        }

        if (reason is not null)
        {
            ctx.Response.Headers[ReasonHeader] = reason;
        }
    }

    private void Warn(string message) => logger.LogWarning("{Message}", message);

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static string Shorten(string s) => s.Length <= 100 ? s : s[..100] + "...";
}
