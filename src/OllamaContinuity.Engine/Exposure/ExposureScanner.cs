using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Exposure;

/// <summary>Options of the network probe.</summary>
public sealed record ExposureScanOptions
{
    /// <summary>The TCP port probed. The default value is 11434.</summary>
    public int Port { get; init; } = 11434;

    /// <summary>The connect timeout, and the timeout of each HTTP request. The default value is 2 seconds.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many addresses are probed at once. The default value is 256 (a /24 in one wave).</summary>
    public int ThrottleLimit { get; init; } = 256;

    /// <summary>Also report hosts that did not answer, or answered something that is not Ollama, as Pass rows. The default value is false.</summary>
    public bool IncludeClosed { get; init; }

    /// <summary>
    /// Creates the TCP sockets the probe connects with. The default value is null: ordinary sockets. Tests create
    /// them inside a network namespace.
    /// </summary>
    public Func<AddressFamily, Socket>? SocketFactory { get; init; }

    /// <summary>The clock for timestamps. The default value is <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Receives one line per probed address as soon as its fate is known (what answered, or why nothing did, and how
    /// long it took). Called from the scan's threads. The default value is null.
    /// </summary>
    public Action<string>? Log { get; init; }
}

/// <summary>What one address answered.</summary>
public sealed record OllamaProbe(IPAddress Address, int Port)
{
    /// <summary>The TCP handshake completed.</summary>
    public bool Open { get; init; }

    /// <summary>GET / answered 200 with the banner "Ollama is running".</summary>
    public bool IsOllama { get; init; }

    /// <summary>The status of GET / (0 when there was no HTTP answer).</summary>
    public int RootStatus { get; init; }

    public string? Version { get; init; }

    /// <summary>The status of GET /api/tags (0 when not asked or no answer).</summary>
    public int TagsStatus { get; init; }

    public IReadOnlyList<string> Models { get; init; } = [];

    /// <summary>
    /// The server is an OllamaContinuity gateway: its answers carry the <c>X-OllamaContinuity-Request-Id</c> header, and
    /// its 401 the <c>WWW-Authenticate</c> realm "OllamaContinuity gateway". <see cref="TagsStatus"/> then tells whether
    /// it asks for a client token (401) or serves its Ollama API to anyone (200).
    /// </summary>
    public bool IsGateway { get; init; }

    /// <summary>Why the probe stopped (connection refused, timeout, not HTTP...).</summary>
    public string? Problem { get; init; }
}

/// <summary>
/// Finds Ollama servers that answer without authentication: for each address, a TCP connect, then GET / (the banner
/// "Ollama is running"), /api/version and /api/tags. Addresses are probed concurrently and every step is bounded by
/// the timeout, so a /24 where nothing answers takes about one timeout per wave of <see cref="ExposureScanOptions.ThrottleLimit"/>.
/// </summary>
public static class ExposureScanner
{
    public const string Banner = "Ollama is running";
    private const int MaxSmallBody = 64 * 1024;
    private const int MaxTagsBody = 1024 * 1024;

    public const string ExposedRemediation = "Set-OllamaHardening -BindAddress 127.0.0.1:11434 -Restart";

    /// <summary>The header every answer of the OllamaContinuity gateway carries (its ChatHandler.RequestIdHeader).</summary>
    public const string GatewayRequestIdHeader = "X-OllamaContinuity-Request-Id";

    /// <summary>The realm of the gateway's 401 (<c>WWW-Authenticate: Bearer realm="OllamaContinuity gateway"</c>).</summary>
    public const string GatewayRealm = "OllamaContinuity gateway";

    /// <summary>What fixes a gateway that answers without a client token: the real gateway refuses to start without tokens.</summary>
    public const string GatewayOpenRemediation = "Stop-AiGateway; Start-AiGateway  # the OllamaContinuity gateway requires client tokens (gateway-tokens.json)";

    /// <summary>Probes every target; <paramref name="onFinding"/> sees each finding as it is made, <paramref name="progress"/> (done, total) after each address.</summary>
    public static async Task<IReadOnlyList<ExposureFinding>> ScanAsync(IReadOnlyList<ScanTarget> targets, ExposureScanOptions options,
        Action<int, int>? progress = null, Action<ExposureFinding>? onFinding = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ThrottleLimit, 1);
        var findings = new List<ExposureFinding>();
        var done = 0;
        var fates = new int[Enum.GetValues<ProbeFate>().Length];
        var scanStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        await Parallel.ForEachAsync(targets, new ParallelOptions { MaxDegreeOfParallelism = options.ThrottleLimit, CancellationToken = cancellationToken }, async (target, ct) =>
        {
            var started = options.Log is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            var probe = await ProbeAsync(target.Address, options.Port, options.Timeout, options.SocketFactory, ct).ConfigureAwait(false);
            options.Log?.Invoke($"{EndPoint(probe.Address, probe.Port)}: {Fate(probe)} [{System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms]");
            Interlocked.Increment(ref fates[(int)Classify(probe)]);
            var finding = ToFinding(target, probe, options);
            if (finding is not null)
            {
                lock (findings)
                {
                    findings.Add(finding);
                }

                onFinding?.Invoke(finding);
            }

            progress?.Invoke(Interlocked.Increment(ref done), targets.Count);
        }).ConfigureAwait(false);

        options.Log?.Invoke(Summary(fates, options.Timeout, System.Diagnostics.Stopwatch.GetElapsedTime(scanStarted)));
        return findings.OrderBy(f => f.Target.Contains(':') ? 1 : 0).ThenBy(f => IPAddress.TryParse(f.Target, out var a) ? Convert.ToHexString(a.GetAddressBytes()) : f.Target, StringComparer.Ordinal).ToList();
    }

    /// <summary>How a probe ended, for the scan's summary: only <see cref="ProbeFate.Silent"/> addresses wait for the timeout.</summary>
    public enum ProbeFate
    {
        Ollama,
        OpenNotOllama,
        Refused,
        Unreachable,
        Silent,
        OtherError,
    }

    public static ProbeFate Classify(OllamaProbe p) =>
        p.IsOllama ? ProbeFate.Ollama
        : p.Open ? ProbeFate.OpenNotOllama
        : p.Problem == "connection refused" ? ProbeFate.Refused
        : p.Problem == "host unreachable" ? ProbeFate.Unreachable
        : p.Problem is not null && p.Problem.StartsWith("no answer within", StringComparison.Ordinal) ? ProbeFate.Silent
        : ProbeFate.OtherError;

    /// <summary>
    /// Where a scan's time went: how many addresses ended at once (refused, unreachable) and how many waited for the
    /// timeout, and the scan rate (addresses probed per second of the whole scan, <paramref name="elapsed"/>).
    /// </summary>
    public static string Summary(IReadOnlyList<int> fates, TimeSpan timeout, TimeSpan elapsed)
    {
        var total = fates.Sum();
        var seconds = elapsed.TotalSeconds;
        var rate = seconds > 0 ? total / seconds : total;
        return $"Fates: {fates[(int)ProbeFate.Ollama]} Ollama, {fates[(int)ProbeFate.OpenNotOllama]} open without Ollama, "
            + $"{fates[(int)ProbeFate.Refused]} refused and {fates[(int)ProbeFate.Unreachable]} unreachable (ended at once), "
            + $"{fates[(int)ProbeFate.Silent]} silent (waited the {timeout.TotalMilliseconds:0} ms timeout)"
            + (fates[(int)ProbeFate.OtherError] > 0 ? $", {fates[(int)ProbeFate.OtherError]} other connect error(s)" : "")
            + string.Create(CultureInfo.InvariantCulture, $"; {total} address(es) in {seconds:0.000} s: {rate:0} addresses/s.");
    }

    /// <summary>One probe's outcome in a few words, for -Verbose.</summary>
    public static string Fate(OllamaProbe p) =>
        p.IsGateway ? (p.TagsStatus is 401 or 403 ? $"OllamaContinuity gateway, asks for a client token (HTTP {p.TagsStatus})" : $"OllamaContinuity gateway, /api/tags answered HTTP {p.TagsStatus} without a client token")
        : p.IsOllama ? $"Ollama {p.Version ?? "(version hidden)"} answers without authentication, listing {p.Models.Count} model(s)"
        : !p.Open ? "nothing answers (" + (p.Problem ?? "no connection") + ")"
        : p.RootStatus > 0 ? $"open, HTTP {p.RootStatus} without the Ollama banner (not Ollama)"
        : "open, but no HTTP answer (not Ollama)";

    /// <summary>The finding for one probe: Fail for an Ollama API that answers; nothing (or a Pass row with IncludeClosed) otherwise.</summary>
    public static ExposureFinding? ToFinding(ScanTarget target, OllamaProbe p, ExposureScanOptions options)
    {
        var now = options.Time.GetUtcNow();
        var ep = EndPoint(p.Address, p.Port);
        var hostName = target.Given == p.Address.ToString() ? "" : target.Given;
        if (p.IsOllama)
        {
            var leaked = p.Models.Count == 0 ? "no models" : $"{p.Models.Count} model(s): {string.Join(", ", p.Models)}";
            var authenticated = p.TagsStatus is 401 or 403;
            return new ExposureFinding
            {
                Check = ExposureChecks.NetworkExposure,
                Status = authenticated ? ExposureStatus.Warn : ExposureStatus.Fail,
                Target = p.Address.ToString(),
                Port = p.Port,
                HostName = hostName,
                Version = p.Version ?? "",
                Models = string.Join(", ", p.Models),
                ModelCount = p.Models.Count,
                Timestamp = now,
                Detail = authenticated
                    ? $"An Ollama banner answers on {ep} without authentication, but /api/tags asks for it (HTTP {p.TagsStatus}): a proxy guards the API; keep the banner private too."
                    : $"Ollama {p.Version ?? "(version hidden)"} answers on {ep} without authentication: anyone who can reach it can run, pull and delete models. It lists {leaked}."
                      + (p.TagsStatus is 0 or 200 ? "" : $" (/api/tags answered HTTP {p.TagsStatus})"),
                Remediation = authenticated ? "" : ExposedRemediation,
            };
        }

        if (p.IsGateway)
        {
            return GatewayFinding(p, now, hostName, ep);
        }

        if (!options.IncludeClosed)
        {
            return null;
        }

        return new ExposureFinding
        {
            Check = ExposureChecks.NetworkExposure,
            Status = ExposureStatus.Pass,
            Target = p.Address.ToString(),
            Port = p.Port,
            HostName = hostName,
            Timestamp = now,
            Detail = !p.Open ? $"No Ollama: {ep} does not answer ({p.Problem})."
                : p.RootStatus > 0 ? $"No Ollama: {ep} is open and answers HTTP {p.RootStatus} on / without the Ollama banner (another server)."
                : $"No Ollama: {ep} is open but {p.Problem}.",
        };
    }

    /// <summary>
    /// A gateway found by the network probe: one that asks for a client token is an authenticating proxy (Pass, always
    /// reported, so a scan inventories the gateways); one that lists its models without a token is exposed (Fail).
    /// </summary>
    private static ExposureFinding GatewayFinding(OllamaProbe p, DateTimeOffset now, string hostName, string ep)
    {
        var leaked = p.Models.Count == 0 ? "no models" : $"{p.Models.Count} model(s): {string.Join(", ", p.Models)}";
        var (status, detail) = p.TagsStatus switch
        {
            401 or 403 => (ExposureStatus.Pass, $"An OllamaContinuity gateway answers on {ep} and asks for a client token (GET /api/tags without one: HTTP {p.TagsStatus}): an authenticating proxy, not an open Ollama API. Keep its port behind a firewall rule as well."),
            200 => (ExposureStatus.Fail, $"An OllamaContinuity gateway (or a server with its marker) answers on {ep} without a client token: anyone who can reach it can use the cloud and Ollama backends behind it. /api/tags lists {leaked}."),
            _ => (ExposureStatus.Warn, $"An OllamaContinuity gateway answers on {ep}, but GET /api/tags without a client token answered {(p.TagsStatus == 0 ? "nothing" : "HTTP " + p.TagsStatus.ToString(CultureInfo.InvariantCulture))}, not 401: check that it asks for client tokens."),
        };
        return new ExposureFinding
        {
            Check = ExposureChecks.NetworkExposure,
            Status = status,
            Target = p.Address.ToString(),
            Port = p.Port,
            HostName = hostName,
            Models = status == ExposureStatus.Fail ? string.Join(", ", p.Models) : "",
            ModelCount = status == ExposureStatus.Fail ? p.Models.Count : 0,
            Timestamp = now,
            Detail = detail,
            Remediation = status == ExposureStatus.Pass ? "" : GatewayOpenRemediation,
        };
    }

    /// <summary>
    /// Asks a server known to be a gateway (the local audit found its process) for GET /api/tags without a client
    /// token. <see cref="OllamaProbe.TagsStatus"/> is 401 when it asks for one; <see cref="OllamaProbe.IsGateway"/> tells
    /// whether the answer carried the gateway's marker. Never throws for network failures.
    /// </summary>
    public static async Task<OllamaProbe> ProbeTagsAsync(IPAddress address, int port, TimeSpan timeout, Func<AddressFamily, Socket>? socketFactory, CancellationToken cancellationToken)
    {
        using var handler = NewHandler(address, port, timeout, socketFactory, cancellationToken);
        using var client = new HttpClient(handler, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        var tags = await GetAsync(client, new Uri("http://" + EndPoint(address, port) + "/api/tags"), timeout, MaxTagsBody, cancellationToken).ConfigureAwait(false);
        var result = new OllamaProbe(address, port);
        return tags.ConnectProblem is { } cp ? result with { Problem = cp }
            : tags.Status == 0 ? result with { Open = true, Problem = tags.Problem ?? "it does not answer HTTP" }
            : result with { Open = true, IsGateway = tags.GatewayMarker, TagsStatus = tags.Status, Models = tags.Status == 200 ? ReadModels(tags.Body) : [] };
    }

    /// <summary>Probes one address. Never throws for network failures: they are in <see cref="OllamaProbe.Problem"/>.</summary>
    public static async Task<OllamaProbe> ProbeAsync(IPAddress address, int port, TimeSpan timeout, Func<AddressFamily, Socket>? socketFactory, CancellationToken cancellationToken)
    {
        var result = new OllamaProbe(address, port);
        using var handler = NewHandler(address, port, timeout, socketFactory, cancellationToken);
        using var client = new HttpClient(handler, disposeHandler: false) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        var baseUri = new Uri("http://" + EndPoint(address, port) + "/");

        var root = await GetAsync(client, new Uri(baseUri, "/"), timeout, MaxSmallBody, cancellationToken).ConfigureAwait(false);
        if (root.ConnectProblem is { } cp)
        {
            return result with { Problem = cp };
        }

        result = result with { Open = true, RootStatus = root.Status };
        if (root.Status == 0)
        {
            return result with { Problem = root.Problem ?? "it does not answer HTTP" };
        }

        if (root.GatewayMarker)
        {
            // The gateway: no banner, and every path but /healthz needs a client token. Does /api/tags without one answer?
            var gatewayTags = await GetAsync(client, new Uri(baseUri, "/api/tags"), timeout, MaxTagsBody, cancellationToken).ConfigureAwait(false);
            return result with { IsGateway = true, TagsStatus = gatewayTags.Status, Models = gatewayTags.Status == 200 ? ReadModels(gatewayTags.Body) : [], Problem = "an OllamaContinuity gateway, not Ollama" };
        }

        if (root.Status != 200 || !root.Body.Trim().StartsWith(Banner, StringComparison.Ordinal))
        {
            return result with { Problem = "no Ollama banner" };
        }

        result = result with { IsOllama = true };
        var version = await GetAsync(client, new Uri(baseUri, "/api/version"), timeout, MaxSmallBody, cancellationToken).ConfigureAwait(false);
        if (version.Status == 200)
        {
            result = result with { Version = ReadString(version.Body, "version") };
        }

        var tags = await GetAsync(client, new Uri(baseUri, "/api/tags"), timeout, MaxTagsBody, cancellationToken).ConfigureAwait(false);
        return result with { TagsStatus = tags.Status, Models = tags.Status == 200 ? ReadModels(tags.Body) : [] };
    }

    private static SocketsHttpHandler NewHandler(IPAddress address, int port, TimeSpan timeout, Func<AddressFamily, Socket>? socketFactory, CancellationToken cancellationToken)
    {
        var endPoint = new IPEndPoint(address, port);
        return new SocketsHttpHandler
        {
            ConnectTimeout = timeout,
            UseProxy = false,
            AllowAutoRedirect = false,
            PooledConnectionLifetime = timeout * 4,
            MaxConnectionsPerServer = 1,
            ConnectCallback = async (_, ct) =>
            {
                var socket = socketFactory?.Invoke(address.AddressFamily) ?? new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.NoDelay = true;
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    cts.CancelAfter(timeout);
                    await socket.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (Exception e)
                {
                    socket.Dispose();
                    // The handler's ConnectTimeout (the same timeout) may fire on ct before our own timer: either way a
                    // cancellation that is not the scan's own is a silent address, not "The operation was canceled.".
                    throw new ConnectFailedException(e is OperationCanceledException && !cancellationToken.IsCancellationRequested
                        ? $"no answer within {timeout.TotalMilliseconds:0} ms"
                        : e is SocketException se ? se.SocketErrorCode switch
                        {
                            SocketError.ConnectionRefused => "connection refused",
                            SocketError.HostUnreachable or SocketError.NetworkUnreachable => "host unreachable",
                            SocketError.TimedOut => "connection timed out",
                            _ => se.SocketErrorCode.ToString(),
                        } : e.Message, e);
                }
            },
        };
    }

    public static string EndPoint(IPAddress address, int port) =>
        (address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString()) + ":" + port.ToString(CultureInfo.InvariantCulture);

    private static async Task<(int Status, string Body, string? Problem, string? ConnectProblem, bool GatewayMarker)> GetAsync(HttpClient client, Uri uri, TimeSpan timeout, int maxBody, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout * 2); // connect (bounded by the timeout) plus the answer
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            await using var stream = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            var buffer = new byte[16 * 1024];
            using var body = new MemoryStream();
            int n;
            while (body.Length < maxBody && (n = await stream.ReadAsync(buffer, cts.Token).ConfigureAwait(false)) > 0)
            {
                body.Write(buffer, 0, n);
            }

            var marker = response.Headers.Contains(GatewayRequestIdHeader)
                || response.Headers.WwwAuthenticate.Any(a => a.Parameter?.Contains(GatewayRealm, StringComparison.Ordinal) == true);
            return ((int)response.StatusCode, Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)body.Length), null, null, marker);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && FindConnectFailure(e) is { } cf)
        {
            return (0, "", null, cf.Message, false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is HttpRequestException or OperationCanceledException or IOException)
        {
            return (0, "", e is OperationCanceledException ? $"it sends no HTTP answer within {timeout.TotalMilliseconds:0} ms" : "it does not answer HTTP", null, false);
        }
    }

    private static ConnectFailedException? FindConnectFailure(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is ConnectFailedException c)
            {
                return c;
            }
        }

        return null;
    }

    /// <summary>The longest model name or version kept from a scanned server (the rest is cut). The default value is 200 characters.</summary>
    private const int MaxFieldLength = 200;

    // Everything read from a scanned server goes through TerminalSafe before it enters a finding: a hostile
    // server's names may hold escape sequences (window title, clipboard, erased lines) or CR/LF (forged rows).
    private static string? ReadString(string json, string property)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? TerminalSafe.Clean(v.GetString(), MaxFieldLength) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IReadOnlyList<string> ReadModels(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("models", out var models) || models.ValueKind != JsonValueKind.Array)
            {
                return [];
            }

            return models.EnumerateArray()
                .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null)
                .Where(n => !string.IsNullOrEmpty(n)).Select(n => TerminalSafe.Clean(n, MaxFieldLength)).Where(n => n.Length > 0).ToArray();
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private sealed class ConnectFailedException(string message, Exception inner) : IOException(message, inner);
}
