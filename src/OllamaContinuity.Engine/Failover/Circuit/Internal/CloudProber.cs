using System.Buffers;
using System.Text;
using OllamaContinuity.Failover.Protocols;
using OllamaContinuity.Http;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover.Circuit;

/// <summary>What one probe found.</summary>
internal readonly record struct ProbeResult(bool Healthy, string Detail, TimeSpan? RetryAfter);

/// <summary>
/// Asks a cloud endpoint whether its model answers: a minimal real request to the same model (a fixed prompt, never a
/// user's, and one output token), because a models list or a status page proves nothing. Healthy when the cloud answers
/// as it would a well-formed request: a 2xx with a readable body, or a verdict on the request itself (a 4xx that does
/// not fail over). The probe's timeout is the endpoint's first-token timeout: a one-token answer needs no longer.
/// </summary>
internal sealed class CloudProber(HttpClientPool pool, TimeProvider time)
{
    /// <summary>The fixed prompt of every probe.</summary>
    public const string Prompt = "Reply with the single word OK.";

    private const int MaxProbeBody = 64 * 1024;

    /// <summary>The probe request: the fixed prompt, one output token (max_tokens 1; num_predict 1 for Ollama), no stream.</summary>
    public static AiRequest Request { get; } = new()
    {
        Messages = [new ChatMessage("user", Prompt)],
        MaxTokens = 1,
        Stream = false,
        RequestId = "circuit-probe",
    };

    public async Task<ProbeResult> ProbeAsync(BackendEndpoint ep, CancellationToken cancellationToken)
    {
        var protocol = ChatProtocol.For(ep.Kind);
        using var timeout = new CancellationTokenSource(ep.Timeouts.EffectiveFirstToken, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var message = protocol.BuildRequest(ep, Request);
            message.Options.Set(HttpClientPool.ConnectTimeoutOption, ep.Timeouts.Connect);
            using var response = await pool.Client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var body = await ReadAsync(response, linked.Token).ConfigureAwait(false);
            if (status is < 200 or > 299)
            {
                var (code, msg) = ChatProtocol.ParseError(Encoding.UTF8.GetString(body));
                var d = FailoverClassifier.FromStatus(status, response.Headers, code, msg);
                return d.CountsForBreaker
                    ? new(false, Scrub($"{d.Class}: {d.Detail}", ep), d.RetryAfter)
                    : new(true, Scrub($"Success (the cloud answered with a verdict on the probe: {d.Detail})", ep), null);
            }

            var chunk = protocol.ParseBody(body);
            return chunk.Kind is ChunkKind.Text or ChunkKind.Done or ChunkKind.Refusal
                ? new(true, "Success", null)
                : new(false, Scrub($"{FailureClass.MalformedResponse}: {chunk.Error ?? "unexpected response"}", ep), null);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException or ObjectDisposedException or InvalidOperationException or System.Text.Json.JsonException or InvalidDataException)
        {
            var d = FailoverClassifier.FromException(ex, TimeoutPhase.Total, false);
            return new(false, Scrub($"{d.Class}: {d.Detail}", ep), null);
        }
    }

    private static string Scrub(string detail, BackendEndpoint ep) => Redact.Scrub(detail, ep.ApiKey) ?? "";

    private static async Task<byte[]> ReadAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var s = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var ms = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(8 * 1024);
        try
        {
            int n;
            while ((n = await s.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                if (ms.Length + n > MaxProbeBody)
                {
                    throw new InvalidDataException($"the probe's answer is larger than {MaxProbeBody} bytes");
                }

                ms.Write(buffer, 0, n);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return ms.ToArray();
    }
}
