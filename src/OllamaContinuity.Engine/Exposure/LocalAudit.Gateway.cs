using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace OllamaContinuity.Exposure;

/// <summary>
/// An OllamaContinuity gateway the local audit found listening on this host: which process, from what evidence, on
/// which sockets, and what it answered to a request without a client token.
/// </summary>
public sealed record GatewayFound(int Pid, string Evidence, IReadOnlyList<ListeningSocket> Sockets)
{
    /// <summary>The port its findings name (the first socket's).</summary>
    public int Port => Sockets.Count > 0 ? Sockets[0].Port : 0;

    /// <summary>The answer to GET /api/tags without a client token; null when not asked (offline audit).</summary>
    public OllamaProbe? Probe { get; init; }

    /// <summary>Why there is no <see cref="Probe"/>.</summary>
    public string? NotProbed { get; init; }

    /// <summary>Where the command line says the client tokens come from (<c>--tokens-file</c>, <c>--tokens-stdin</c>), or null when it names none.</summary>
    public string? TokensFile { get; init; }

    public bool BeyondLoopback => Sockets.Any(s => !s.IsLoopback);

    /// <summary>The probe got 401 or 403: every request needs a client token.</summary>
    public bool TokensRequired => Probe is { TagsStatus: 401 or 403 };

    /// <summary>The probe got 200: it serves its Ollama API without a client token.</summary>
    public bool AnswersWithoutToken => Probe is { TagsStatus: 200 };

    public string Where => string.Join(", ", Sockets.Select(s => s.ToString()).Distinct());
}

/// <summary>The gateway part of the local audit: GatewayBind, GatewayAuth and GatewayFirewall for each gateway found.</summary>
public sealed partial class LocalAudit
{
    private const string GatewayFirewallFix = "Set-OllamaFirewallRule -AllowFrom <trusted client CIDRs> -Port {0}";

    /// <summary>
    /// The state file to check as a hint. A file is never trusted alone: its process must be running and must own a
    /// socket listening on its port.
    /// </summary>
    private string? GatewayStateFile => options.GatewayStateFile ?? (options.Root is "/" or "" && options.IsLive ? OllamaContinuity.Gateway.GatewayControl.StateFile : null);

    /// <summary>
    /// Finds the gateways listening on this host: on Linux from /proc (a process running OllamaContinuity.Gateway.dll
    /// and the listening sockets its file descriptors hold), elsewhere from the state file checked against the running
    /// process and the socket table. A live audit then asks each one for GET /api/tags without a client token.
    /// Returns the gateways and the reasons a state file was not credited.
    /// </summary>
    public async Task<(IReadOnlyList<GatewayFound> Found, IReadOnlyList<(string Detail, int Port)> NotCredited)> FindGatewaysAsync(CancellationToken ct)
    {
        var found = new List<GatewayFound>();
        var notCredited = new List<(string, int)>();
        var state = ReadGatewayState();
        if (Linux)
        {
            var proc = R("/proc");
            var all = ProcFs.Listening(proc);
            foreach (var p in ProcFs.GatewayProcesses(proc))
            {
                var (bind, port, tokens) = GatewayArguments(p.Arguments);
                var inodes = ProcFs.SocketInodes(proc, p.Pid);
                var sockets = inodes is not null
                    ? all.Where(s => inodes.Contains(s.Inode)).ToList()
                    : all.Where(s => port > 0 && s.Port == port && (p.Uid < 0 || s.Uid == p.Uid)).ToList();
                var how = inodes is not null ? "its open sockets" : $"the socket on its --port {port} owned by uid {p.Uid} (its descriptors are not readable)";
                if (sockets.Count == 0)
                {
                    notCredited.Add((inodes is not null
                        ? $"Process {p.Pid} runs the OllamaContinuity gateway (--bind {Internal.TerminalSafe.Clean(bind, 60)} --port {port}) but listens on no TCP port ({how}): it is starting or stopping; nothing is credited to it."
                        : $"Process {p.Pid} runs the OllamaContinuity gateway (--bind {Internal.TerminalSafe.Clean(bind, 60)} --port {port}), but its file descriptors cannot be read and no socket on its --port belongs to its uid {p.Uid}: nothing is credited to it (run the audit as root to see its sockets).", port));
                    continue;
                }

                var agrees = state is { } st && st.Pid == p.Pid ? $"; {st.File} agrees" : "";
                found.Add(new GatewayFound(p.Pid, $"process {p.Pid}, {Path.GetFileName(p.Arguments.FirstOrDefault(a => a.EndsWith(ProcFs.GatewayAssembly, StringComparison.Ordinal)) ?? p.Command)} --bind {Internal.TerminalSafe.Clean(bind, 60)} --port {port}, sockets from /proc ({how}){agrees}", sockets)
                {
                    TokensFile = tokens,
                });
            }

            if (state is { } s && found.All(g => g.Pid != s.Pid))
            {
                var p = ProcFs.Process(proc, s.Pid);
                var inodes = p is null ? null : ProcFs.SocketInodes(proc, s.Pid);
                var sockets = inodes is null ? [] : all.Where(x => inodes.Contains(x.Inode) && x.Port == s.Port).ToList();
                if (p is null || (options.Root is "/" or "" && !IsRunning(s.Pid, s.ProcessStartTime)))
                {
                    notCredited.Add(($"{s.File} names a gateway (process {s.Pid}, {s.Url}), but that process is not running (or its PID now belongs to another program): a stale state file, nothing is credited to it. Stop-AiGateway removes it.", s.Port));
                }
                else if (sockets.Count == 0)
                {
                    notCredited.Add(($"{s.File} names a gateway (process {s.Pid}, {s.Url}), but process {s.Pid} ({Internal.TerminalSafe.Clean(p.Command, 100)}) {(inodes is null ? "cannot be inspected" : $"does not listen on port {s.Port}")}: nothing is credited to it.", s.Port));
                }
                else
                {
                    found.Add(new GatewayFound(s.Pid, $"process {s.Pid} ({Internal.TerminalSafe.Clean(p.Command, 100)}) named by {s.File}, which owns the socket on its port (sockets from /proc)", sockets));
                }
            }
        }
        else if (state is { } s && options.IsLive)
        {
            var alive = IsRunning(s.Pid, s.ProcessStartTime);
            var (listening, source) = alive ? await ListeningAsync(s.Port, ct).ConfigureAwait(false) : ([], "");
            var sockets = listening.Where(x => x.Pid is null || x.Pid == s.Pid).ToList();
            if (!alive)
            {
                notCredited.Add(($"{s.File} names a gateway (process {s.Pid}, {s.Url}), but that process is not running: a stale state file, nothing is credited to it. Stop-AiGateway removes it.", s.Port));
            }
            else if (sockets.Count == 0)
            {
                notCredited.Add(($"{s.File} names a gateway (process {s.Pid}, {s.Url}), but nothing it owns listens on port {s.Port} ({source}): nothing is credited to it.", s.Port));
            }
            else
            {
                found.Add(new GatewayFound(s.Pid, $"process {s.Pid} named by {s.File}, listening on its port (sockets from {source})", sockets));
            }
        }

        for (var i = 0; i < found.Count; i++)
        {
            found[i] = await ProbeGatewayAsync(found[i], ct).ConfigureAwait(false);
        }

        return (found, notCredited);
    }

    /// <summary>GET /api/tags without a client token, through loopback when the gateway listens there or on a wildcard; a specific address only on the live machine; nothing offline.</summary>
    private async Task<GatewayFound> ProbeGatewayAsync(GatewayFound g, CancellationToken ct)
    {
        if (!options.IsLive)
        {
            return g with { NotProbed = "an offline audit (-Root) sends no request" };
        }

        var s = g.Sockets.FirstOrDefault(x => x.IsLoopback) ?? g.Sockets.FirstOrDefault(x => x.IsWildcard) ?? g.Sockets[0];
        var at = s.IsWildcard ? (s.Address.AddressFamily == AddressFamily.InterNetworkV6 && !g.Sockets.Any(x => x.Address.AddressFamily == AddressFamily.InterNetwork) ? IPAddress.IPv6Loopback : IPAddress.Loopback)
            : s.Address.IsIPv4MappedToIPv6 ? s.Address.MapToIPv4() : s.Address;
        var probe = await ExposureScanner.ProbeTagsAsync(at, s.Port, options.ProbeTimeout, options.SocketFactory, ct).ConfigureAwait(false);
        return g with { Probe = probe };
    }

    private IEnumerable<ExposureFinding> GatewayFindings(GatewayFound g, FirewallStatus? firewall)
    {
        var port = g.Port;
        var bindFix = $"Start-AiGateway -BindAddress 127.0.0.1 -Port {port}  # after Stop-AiGateway; or keep it on the network, asking for client tokens";
        var bindDetail = g.BeyondLoopback
            ? $"The OllamaContinuity gateway listens beyond loopback ({g.Where}; {g.Evidence}): the network reaches the AI backends through it, "
              + (g.TokensRequired ? "and it asks for client tokens (GatewayAuth)." : "but it was not seen to ask for client tokens (GatewayAuth).")
            : $"The OllamaContinuity gateway listens on loopback only ({g.Where}; {g.Evidence}): applications on this machine use it; the network cannot reach it.";
        yield return Finding(ExposureChecks.GatewayBind, !g.BeyondLoopback || g.TokensRequired ? ExposureStatus.Pass : ExposureStatus.Warn, bindDetail, bindFix, port);

        var p = g.Probe;
        var authDetail = p is null
            ? $"Not probed: {g.NotProbed}. The gateway's command line {(g.TokensFile is null ? "names no client tokens" : $"names its client tokens: {g.TokensFile}")}; the OllamaContinuity gateway refuses to start without client tokens. Run Test-OllamaExposure on the host to verify."
            : p.TagsStatus is 401 or 403 ? $"It asks for a client token: GET /api/tags without one, through {ExposureScanner.EndPoint(p.Address, p.Port)}, answered HTTP {p.TagsStatus}{(p.IsGateway ? " with the gateway's marker" : "")}."
            : p.TagsStatus == 200 ? $"It answered GET /api/tags through {ExposureScanner.EndPoint(p.Address, p.Port)} without a client token (HTTP 200, {p.Models.Count} model(s) listed{(p.Models.Count > 0 ? ": " + string.Join(", ", p.Models) : "")}): anyone who reaches {g.Where} uses the backends behind it."
            : $"Could not verify that it asks for client tokens: GET /api/tags without one, through {ExposureScanner.EndPoint(p.Address, p.Port)}, {(p.TagsStatus > 0 ? $"answered HTTP {p.TagsStatus}" : $"got no answer ({p.Problem})")}, not 401.";
        var authStatus = p is null ? ExposureStatus.Warn : g.TokensRequired ? ExposureStatus.Pass : g.AnswersWithoutToken ? ExposureStatus.Fail : ExposureStatus.Warn;
        var auth = Finding(ExposureChecks.GatewayAuth, authStatus, authDetail, p is null ? "Test-OllamaExposure  # on the host itself" : ExposureScanner.GatewayOpenRemediation, port);
        yield return g.AnswersWithoutToken ? auth with { Models = string.Join(", ", p!.Models), ModelCount = p.Models.Count } : auth;

        var fwFix = string.Format(CultureInfo.InvariantCulture, GatewayFirewallFix, port);
        if (!g.BeyondLoopback || firewall is null)
        {
            yield return Finding(ExposureChecks.GatewayFirewall, ExposureStatus.NotApplicable, "The gateway listens on loopback only; a firewall rule matters once it is bound beyond loopback.", fwFix, port);
            yield break;
        }

        var who = firewall.Backend is null ? "" : $" ({firewall.Backend})";
        yield return firewall.Restricted switch
        {
            true => Finding(ExposureChecks.GatewayFirewall, ExposureStatus.Pass, $"A firewall rule restricts the gateway's port {port}{who}: {firewall.Detail}" +
                (firewall.AllowFrom.Count > 0 ? " Allowed: " + string.Join(", ", firewall.AllowFrom) + "." : ""), fwFix, port),
            false => Finding(ExposureChecks.GatewayFirewall, g.TokensRequired ? ExposureStatus.Warn : ExposureStatus.Fail,
                $"The gateway's port {port} is reachable beyond loopback and no active firewall rule restricts it{who}: {firewall.Detail}" +
                (g.TokensRequired ? " It asks for client tokens, but the checklist also restricts the port to trusted clients." : ""), fwFix, port),
            _ => Finding(ExposureChecks.GatewayFirewall, ExposureStatus.Warn, $"Whether a firewall restricts the gateway's port {port} {firewall.Detail}. Check with Get-OllamaFirewallRule -Port {port}.", fwFix, port),
        };
    }

    /// <summary>What the Authentication item adds when Ollama listens on loopback only: who reaches it across the network, through which gateway.</summary>
    private static (string Status, string Detail) LoopbackAuthentication(IReadOnlyList<GatewayFound> gateways)
    {
        const string ollama = "The API listens on loopback only; remote clients cannot reach it unauthenticated.";
        var open = gateways.FirstOrDefault(g => g.BeyondLoopback && g.AnswersWithoutToken);
        if (open is not null)
        {
            return (ExposureStatus.Fail, $"Ollama listens on loopback only, but the OllamaContinuity gateway on {open.Where} answers without a client token: it forwards the network to the backends unauthenticated (see GatewayAuth).");
        }

        var proxy = gateways.FirstOrDefault(g => g.BeyondLoopback && g.TokensRequired);
        if (proxy is not null)
        {
            return (ExposureStatus.Pass, $"Ollama listens on loopback only, and the network reaches it only through the OllamaContinuity gateway on {proxy.Where}, which refuses requests without a client token (HTTP {proxy.Probe!.TagsStatus} without one): the checklist's authenticating reverse proxy in front of Ollama.");
        }

        var local = gateways.FirstOrDefault(g => g.TokensRequired);
        if (local is not null)
        {
            return (ExposureStatus.Pass, $"{ollama} The OllamaContinuity gateway listens on loopback only ({local.Where}) and asks for client tokens; to serve remote clients, bind it beyond loopback (Start-AiGateway -BindAddress <address> -Force), not Ollama.");
        }

        var unverified = gateways.FirstOrDefault();
        if (unverified is not null)
        {
            return (ExposureStatus.Pass, $"{ollama} An OllamaContinuity gateway listens on {unverified.Where}, but it was not verified to ask for client tokens (see GatewayAuth), so it is not credited as the authenticating proxy.");
        }

        return (ExposureStatus.Pass, $"{ollama} No authenticating gateway was found: none is needed while nothing remote uses Ollama (Start-AiGateway -BindAddress <address> -Force serves remote clients with client tokens).");
    }

    private sealed record GatewayState(string File, int Pid, int Port, string? Url, DateTime? ProcessStartTime);

    private GatewayState? ReadGatewayState()
    {
        var file = GatewayStateFile;
        try
        {
            if (file is null || !File.Exists(file))
            {
                return null;
            }

            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            var pid = root.TryGetProperty("pid", out var p) && p.TryGetInt32(out var pi) ? pi : 0;
            var port = root.TryGetProperty("port", out var po) && po.TryGetInt32(out var poi) ? poi : 0;
            var url = root.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String ? Internal.TerminalSafe.Clean(u.GetString(), 200) : null;
            DateTime? started = root.TryGetProperty("processStartTime", out var ps) && ps.ValueKind == JsonValueKind.String && ps.TryGetDateTime(out var pst) ? pst.ToUniversalTime() : null;
            return pid > 0 && port is > 0 and <= 65535 ? new GatewayState(file, pid, port, url, started) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>--bind, --port and the client tokens' source (--tokens-file, --tokens-stdin) of a gateway command line, with the gateway's defaults.</summary>
    internal static (string Bind, int Port, string? TokensFile) GatewayArguments(IReadOnlyList<string> args)
    {
        string bind = "127.0.0.1", tokens = "";
        var port = 11435;
        for (var i = 0; i < args.Count; i++)
        {
            string Next() => i + 1 < args.Count ? args[++i] : "";
            switch (args[i])
            {
                case "--bind":
                    bind = Next() is { Length: > 0 } b ? b : bind;
                    break;
                case "--port":
                    port = int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0;
                    break;
                case "--tokens-file":
                    tokens = Next();
                    break;
                case "--tokens-stdin":
                    tokens = tokens.Length > 0 ? tokens : "(tokens on standard input)";
                    break;
            }
        }

        return (bind, port, tokens.Length > 0 ? tokens : null);
    }

    private static bool IsRunning(int pid, DateTime? startUtc)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            // A recycled PID is another program: the start time must match (to the second).
            return !p.HasExited && (startUtc is null || Math.Abs((p.StartTime.ToUniversalTime() - startUtc.Value).TotalSeconds) < 2);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
