using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Drill;

/// <summary>Why a gateway cannot be used by a drill: a stable id (the cmdlet's ErrorId) and the message.</summary>
public sealed record DrillGatewayProblem(string ErrorId, string Message);

/// <summary>One circuit the gateway reports on /v1/gateway/status.</summary>
public sealed record DrillGatewayCircuit(string Endpoint, string State);

/// <summary>What one probe through the gateway got back.</summary>
internal sealed record DrillGatewayAnswer(string Backend, string? FailoverReason, string? RequestId, string Text, double LatencyMs, string? Error);

/// <summary>
/// The drill's HTTP client of the local gateway: its health (/healthz), its state (/v1/gateway/status, which needs a
/// valid client token) and probes (/v1/chat/completions, OpenAI-compatible, the drill's workflow in
/// X-OllamaContinuity-Workflow). Who served a probe and why is read from the gateway's response headers. Loopback
/// only, no proxy, no redirects; the token is sent in the Authorization header and never written anywhere else.
/// </summary>
public sealed class DrillGatewayClient : IDisposable
{
    public const string BackendHeader = "X-OllamaContinuity-Backend";
    public const string ReasonHeader = "X-OllamaContinuity-Failover-Reason";
    public const string RequestIdHeader = "X-OllamaContinuity-Request-Id";
    public const string WorkflowHeader = "X-OllamaContinuity-Workflow";

    private static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(5);
    private readonly DrillGateway _gateway;
    private readonly HttpClient _http;

    public DrillGatewayClient(DrillGateway gateway)
    {
        _gateway = gateway;
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            ConnectTimeout = TimeSpan.FromSeconds(3),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        if (gateway.SocketFactory is { } factory)
        {
            handler.ConnectCallback = async (context, ct) =>
            {
                var socket = factory();
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan, MaxResponseContentBufferSize = 4 << 20 };
    }

    /// <summary>The gateway is on this host: a loopback address or 'localhost' (a block on this host cannot reach a gateway elsewhere).</summary>
    public static bool IsLocal(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>Null when the gateway answers /healthz and accepts the token; else why not (nothing is changed either way).</summary>
    public async Task<DrillGatewayProblem?> CheckAsync(CancellationToken ct)
    {
        var at = _gateway.ToString();
        try
        {
            using (var h = await SendAsync(HttpMethod.Get, "/healthz", null, CheckTimeout, ct, auth: false).ConfigureAwait(false))
            {
                if (!h.IsSuccessStatusCode)
                {
                    return new DrillGatewayProblem("GatewayUnhealthy", $"The gateway at {at} is not healthy: GET /healthz answered HTTP {(int)h.StatusCode}.");
                }
            }

            using var s = await SendAsync(HttpMethod.Get, "/v1/gateway/status", null, CheckTimeout, ct).ConfigureAwait(false);
            if (s.StatusCode == HttpStatusCode.Unauthorized)
            {
                return new DrillGatewayProblem("GatewayTokenRejected", $"The gateway at {at} refused the client token (HTTP 401): it is not one of the tokens in the gateway's tokens file.");
            }

            if (!s.IsSuccessStatusCode)
            {
                return new DrillGatewayProblem("GatewayUnhealthy", $"The gateway at {at} did not report its state: GET /v1/gateway/status answered HTTP {(int)s.StatusCode}.");
            }

            return null;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return new DrillGatewayProblem("GatewayUnreachable", $"The gateway at {at} does not answer: {TerminalSafe.Clean(e.Message)}");
        }
    }

    /// <summary>The gateway's circuits (GET /v1/gateway/status); empty when it cannot be read.</summary>
    public async Task<IReadOnlyList<DrillGatewayCircuit>> CircuitsAsync(CancellationToken ct)
    {
        try
        {
            using var r = await SendAsync(HttpMethod.Get, "/v1/gateway/status", null, CheckTimeout, ct).ConfigureAwait(false);
            if (!r.IsSuccessStatusCode)
            {
                return [];
            }

            using var doc = JsonDocument.Parse(await r.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false));
            return doc.RootElement.TryGetProperty("circuits", out var list) && list.ValueKind == JsonValueKind.Array
                ? list.EnumerateArray().Select(c => new DrillGatewayCircuit(Str(c, "endpoint") ?? "", Str(c, "state") ?? "")).ToArray()
                : [];
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return [];
        }
    }

    /// <summary>One chat request through the gateway, as an application sends it; never throws for an HTTP or network failure (the answer says it).</summary>
    internal async Task<DrillGatewayAnswer> ProbeAsync(string prompt, string workflow, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["model"] = _gateway.Model,
            ["messages"] = new[] { new Dictionary<string, string> { ["role"] = "user", ["content"] = prompt } },
        });
        var t0 = Stopwatch.GetTimestamp();
        try
        {
            using var r = await SendAsync(HttpMethod.Post, "/v1/chat/completions", body, _gateway.Timeout, ct, workflow).ConfigureAwait(false);
            var bytes = await r.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
            var latency = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var backend = Header(r, BackendHeader) ?? "None";
            var reason = Header(r, ReasonHeader);
            var id = Header(r, RequestIdHeader);
            var text = "";
            string? error = null;
            try
            {
                using var doc = JsonDocument.Parse(bytes);
                var root = doc.RootElement;
                if (r.IsSuccessStatusCode)
                {
                    text = root.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString() ?? "";
                }
                else
                {
                    error = $"the gateway answered HTTP {(int)r.StatusCode}: " + (root.TryGetProperty("error", out var err) && err.ValueKind == JsonValueKind.Object ? Str(err, "message") : null);
                }
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
            {
                error = r.IsSuccessStatusCode ? "the gateway's answer is not an OpenAI chat completion: " + e.Message : $"the gateway answered HTTP {(int)r.StatusCode}";
            }

            return new DrillGatewayAnswer(backend, reason, id, text, latency, TerminalSafe.Clean(error));
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            var latency = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var why = e is OperationCanceledException ? $"no answer from the gateway within {_gateway.Timeout.TotalSeconds:0} s" : "the gateway could not be reached: " + e.Message;
            return new DrillGatewayAnswer("None", null, null, "", latency, TerminalSafe.Clean(why));
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, byte[]? body, TimeSpan timeout, CancellationToken ct, string? workflow = null, bool auth = true)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        using var m = new HttpRequestMessage(method, new Uri(_gateway.Uri, path));
        if (auth)
        {
            m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _gateway.Token);
        }

        if (workflow is not null)
        {
            m.Headers.TryAddWithoutValidation(WorkflowHeader, workflow);
        }

        if (body is not null)
        {
            m.Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" } } };
        }

        // The whole body (at most MaxResponseContentBufferSize) is read under the same deadline.
        return await _http.SendAsync(m, HttpCompletionOption.ResponseContentRead, cts.Token).ConfigureAwait(false);
    }

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? TerminalSafe.Clean(string.Join(",", v)) : null;

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public void Dispose() => _http.Dispose();
}
