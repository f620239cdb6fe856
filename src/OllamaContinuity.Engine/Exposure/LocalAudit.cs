using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;

namespace OllamaContinuity.Exposure;

/// <summary>Options of the local audit (Test-OllamaExposure without -Target).</summary>
public sealed class LocalAuditOptions
{
    /// <summary>
    /// The root of the system audited: /proc, /sys, /etc, /var and the models directory are read under it. The
    /// default value is "/" (this machine). Any other root is audited offline: no command runs, and the API probe only
    /// goes to loopback.
    /// </summary>
    public string Root { get; init; } = "/";

    /// <summary>The port to audit. The default value is null: the port of the effective OLLAMA_HOST.</summary>
    public int? Port { get; init; }

    /// <summary>This session's environment (the lowest-priority source of OLLAMA_*). The default value is the current process environment.</summary>
    public IReadOnlyDictionary<string, string> SessionEnvironment { get; init; } = CurrentEnvironment();

    public ICommandRunner Runner { get; init; } = ProcessCommandRunner.Default;

    public IFirewallStatusProvider Firewall { get; init; } = UndeterminedFirewallStatusProvider.Instance;

    /// <summary>Machine-scope variables (Windows). The default value is the real machine scope.</summary>
    public IMachineEnvironment Machine { get; init; } = MachineEnvironment.Instance;

    /// <summary>Creates the sockets of the API probe. The default value is null: ordinary sockets.</summary>
    public Func<AddressFamily, Socket>? SocketFactory { get; init; }

    /// <summary>Timeout of the API probe. The default value is 2 seconds.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A log file older than this is stale. The default value is 7 days.</summary>
    public TimeSpan LogMaxAge { get; init; } = TimeSpan.FromDays(7);

    public HardeningPlatform Platform { get; init; } = HardeningRequest.CurrentPlatform;

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Whether the audit may run commands (journalctl, Get-NetTCPConnection, netstat, manage-bde...) and probe a specific local address.
    /// The default value is null: true when <see cref="Root"/> is "/".
    /// </summary>
    public bool? Live { get; init; }

    public bool IsLive => Live ?? Root is "/" or "";

    /// <summary>
    /// The OllamaContinuity gateway's state file (gateway.json), a hint the audit checks against the running process
    /// and its socket, never trusts alone. The default value is null: the current user's gateway.json on a live audit
    /// of this machine, none otherwise.
    /// </summary>
    public string? GatewayStateFile { get; init; }

    private static Dictionary<string, string> CurrentEnvironment()
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            d[(string)e.Key] = (string?)e.Value ?? "";
        }

        return d;
    }
}

/// <summary>An OLLAMA_* value and where it came from.</summary>
public sealed record SourcedValue(string? Value, string Source);

/// <summary>
/// The local audit: the eight items of the production hardening checklist, each a finding with a status, the
/// evidence and the exact call that fixes it. Linux reads /proc, /sys and the systemd unit under
/// <see cref="LocalAuditOptions.Root"/>; Windows and macOS ask their tools through the command runner.
/// </summary>
public sealed partial class LocalAudit(LocalAuditOptions options)
{
    private const string HostVar = "OLLAMA_HOST";
    private const string WebUiPort = "3001";
    private readonly string _target = options.Root is "/" or "" ? Environment.MachineName : options.Root;
    private SystemdService? _service;
    private IReadOnlyList<ProcessInfo>? _processes;
    private Dictionary<string, string>? _etcEnvironment;

    private bool Linux => options.Platform == HardeningPlatform.Linux;

    private string R(string path) => Path.Combine(options.Root, path.TrimStart('/'));

    public async Task<IReadOnlyList<ExposureFinding>> RunAsync(Action<string>? progress = null, CancellationToken cancellationToken = default)
    {
        var findings = new List<ExposureFinding>();
        async Task Step(string name, Func<Task<ExposureFinding>> check)
        {
            progress?.Invoke(name);
            try
            {
                findings.Add(await check().ConfigureAwait(false));
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // One broken source (an unreadable file, a firewall reader that throws) spoils one item, not the audit.
                findings.Add(Finding(name, ExposureStatus.Error, $"The check failed: {e.GetType().Name}: {e.Message}", ""));
            }
        }

        var host = await EffectiveAsync(HostVar, cancellationToken).ConfigureAwait(false);
        var parsed = OllamaHost.Parse(host.Value);
        var port = options.Port ?? parsed.Port;
        var (sockets, socketSource) = await ListeningAsync(port, cancellationToken).ConfigureAwait(false);
        var exposed = sockets.Any(s => !s.IsLoopback) || (sockets.Count == 0 && !parsed.IsLoopback);

        // The gateway first: the Authentication item credits it when it stands in front of a loopback-only Ollama.
        IReadOnlyList<GatewayFound> gateways = [];
        var gatewayFindings = new List<ExposureFinding>();
        progress?.Invoke("Gateway");
        try
        {
            var (found, notCredited) = await FindGatewaysAsync(cancellationToken).ConfigureAwait(false);
            gateways = found;
            foreach (var g in found)
            {
                var firewall = g.BeyondLoopback ? await options.Firewall.GetStatusAsync(g.Port, cancellationToken).ConfigureAwait(false) : null;
                gatewayFindings.AddRange(GatewayFindings(g, firewall));
            }

            gatewayFindings.AddRange(notCredited.Select(n => Finding(ExposureChecks.GatewayBind, ExposureStatus.NotApplicable, n.Detail, "", n.Port)));
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            gatewayFindings.Add(Finding(ExposureChecks.GatewayBind, ExposureStatus.Error, $"The gateway check failed: {e.GetType().Name}: {e.Message}", ""));
        }

        await Step(ExposureChecks.BindAddress, () => Task.FromResult(CheckBind(host, parsed, port, sockets, socketSource))).ConfigureAwait(false);
        await Step(ExposureChecks.Firewall, () => CheckFirewallAsync(exposed, port, cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.Origins, () => CheckOriginsAsync(cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.WebUI, () => CheckWebUiAsync(cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.ServiceUser, () => CheckServiceUserAsync(port, cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.Authentication, () => CheckAuthenticationAsync(parsed, port, sockets, gateways, cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.Logs, () => CheckLogsAsync(cancellationToken)).ConfigureAwait(false);
        await Step(ExposureChecks.DiskEncryption, () => CheckDiskEncryptionAsync(cancellationToken)).ConfigureAwait(false);
        findings.AddRange(gatewayFindings);
        return findings;
    }

    private ExposureFinding Finding(string check, string status, string detail, string remediation, int port = 0) => new()
    {
        Check = check,
        Status = status,
        Target = _target,
        Detail = detail,
        Remediation = status is ExposureStatus.Pass or ExposureStatus.NotApplicable ? "" : remediation,
        Port = port,
        Timestamp = options.Time.GetUtcNow(),
    };

    // ---- sources --------------------------------------------------------------------------------------------

    private SystemdService Service => _service ??= SystemdService.Load(options.Root, HardeningPlanner.ServiceName);

    private IReadOnlyList<ProcessInfo> Processes => _processes ??= Linux ? ProcFs.OllamaServers(R("/proc")) : [];

    /// <summary>The value Ollama's server sees: its running process, then the service unit, then the machine scope, then this session.</summary>
    public async Task<SourcedValue> EffectiveAsync(string name, CancellationToken cancellationToken)
    {
        foreach (var p in Processes)
        {
            if (p.Environment is { } env)
            {
                return new SourcedValue(env.GetValueOrDefault(name), $"process {p.Pid} (ollama serve)");
            }
        }

        if (Linux && Service.Exists)
        {
            if (Service.Environment.TryGetValue(name, out var a))
            {
                return new SourcedValue(a.Value, a.File);
            }
        }

        var machine = await MachineValueAsync(name, cancellationToken).ConfigureAwait(false);
        if (machine is not null)
        {
            return machine;
        }

        if (Linux && Service.Exists)
        {
            return new SourcedValue(null, Service.UnitFile ?? Service.DropIns[0]);
        }

        return options.IsLive && options.SessionEnvironment.TryGetValue(name, out var v) && v.Length > 0
            ? new SourcedValue(v, "this session's environment")
            : new SourcedValue(null, "default");
    }

    private async Task<SourcedValue?> MachineValueAsync(string name, CancellationToken ct)
    {
        switch (options.Platform)
        {
            case HardeningPlatform.Windows:
                return options.Machine.GetUser(name) is { } u ? new SourcedValue(u, "user environment")
                    : options.Machine.Get(name) is { } w ? new SourcedValue(w, "machine environment") : null;
            case HardeningPlatform.MacOS when options.IsLive:
                var r = await options.Runner.RunAsync(CommandInvocation.Of("launchctl", "getenv", name), ct).ConfigureAwait(false);
                return r.Succeeded && r.StandardOutput.Trim().Length > 0 ? new SourcedValue(r.StandardOutput.Trim(), "launchctl getenv") : null;
            case HardeningPlatform.Linux:
                _etcEnvironment ??= ReadEtcEnvironment();
                return _etcEnvironment.TryGetValue(name, out var e) ? new SourcedValue(e, R("/etc/environment")) : null;
            default:
                return null;
        }
    }

    private Dictionary<string, string> ReadEtcEnvironment()
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        var path = R("/etc/environment");
        if (File.Exists(path))
        {
            foreach (var line in File.ReadLines(path))
            {
                var t = line.Trim();
                var eq = t.IndexOf('=');
                if (t.StartsWith('#') || eq <= 0)
                {
                    continue;
                }

                d[t[..eq].Replace("export ", "", StringComparison.Ordinal).Trim()] = t[(eq + 1)..].Trim().Trim('"', '\'');
            }
        }

        return d;
    }

    /// <summary>The sockets listening on <paramref name="port"/> and where they were read (for the finding's evidence).</summary>
    private async Task<(IReadOnlyList<ListeningSocket> Sockets, string Source)> ListeningAsync(int port, CancellationToken ct)
    {
        if (Linux)
        {
            return (ProcFs.Listening(R("/proc"), port), "/proc/net/tcp and tcp6");
        }

        if (!options.IsLive)
        {
            return ([], "no socket table: offline root");
        }

        if (options.Platform != HardeningPlatform.Windows)
        {
            var mac = await options.Runner.RunAsync(CommandInvocation.Of("netstat", "-an", "-p", "tcp"), ct).ConfigureAwait(false);
            return (ParseNetstat(mac.StandardOutput, port).ToList(), "netstat");
        }

        // Windows: the NetTCPIP cmdlet first (runs in the user's PowerShell session); netstat.exe when it is missing,
        // fails, or answers nothing usable (it also reports "no objects found" as an error when nothing listens).
        var tcp = await options.Runner.RunAsync(GetNetTcpConnection(port), ct).ConfigureAwait(false);
        var fromCmdlet = tcp.Succeeded ? ParseNetTcpConnection(tcp.StandardOutput, port).ToList() : [];
        if (fromCmdlet.Count > 0)
        {
            return (fromCmdlet, "Get-NetTCPConnection");
        }

        var why = tcp.Succeeded ? "Get-NetTCPConnection listed no listener" : $"Get-NetTCPConnection failed or found no listener (exit code {tcp.ExitCode})";
        var list = new List<ListeningSocket>();
        foreach (var protocol in new[] { "TCP", "TCPv6" })
        {
            var r = await options.Runner.RunAsync(CommandInvocation.Of("netstat.exe", "-an", "-p", protocol), ct).ConfigureAwait(false);
            list.AddRange(ParseNetstat(r.StandardOutput, port));
        }

        return (list, $"netstat.exe; {why}");
    }

    /// <summary>The Windows listener query: <c>Get-NetTCPConnection -State Listen -LocalPort &lt;port&gt;</c>.</summary>
    internal static CommandInvocation GetNetTcpConnection(int port) =>
        CommandInvocation.Of("Get-NetTCPConnection", "-State", "Listen", "-LocalPort", port.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// Listening sockets from Get-NetTCPConnection objects, one JSON object a line (LocalAddress, LocalPort, State,
    /// OwningProcess). State is the TcpState name ("Listen") or its number (2); numbers may come as JSON numbers or
    /// strings. Lines that are not such objects are skipped.
    /// </summary>
    internal static IEnumerable<ListeningSocket> ParseNetTcpConnection(string text, int port)
    {
        foreach (var line in text.Split('\n'))
        {
            var t = line.Trim();
            if (!t.StartsWith('{'))
            {
                continue;
            }

            ListeningSocket? socket = null;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(t);
                var o = doc.RootElement;
                if (Text(o, "LocalAddress") is { } addr && IPAddress.TryParse(addr.Split('%')[0], out var ip)
                    && int.TryParse(Text(o, "LocalPort"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p == port
                    && Text(o, "State") is { } state && (state == "2" || state.Equals("Listen", StringComparison.OrdinalIgnoreCase)))
                {
                    socket = new ListeningSocket(ip, p, -1)
                    {
                        Pid = int.TryParse(Text(o, "OwningProcess"), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null,
                    };
                }
            }
            catch (System.Text.Json.JsonException)
            {
            }

            if (socket is not null)
            {
                yield return socket;
            }
        }

        static string? Text(System.Text.Json.JsonElement o, string name) =>
            o.ValueKind == System.Text.Json.JsonValueKind.Object && o.TryGetProperty(name, out var v)
                ? v.ValueKind switch
                {
                    System.Text.Json.JsonValueKind.String => v.GetString()?.Trim(),
                    System.Text.Json.JsonValueKind.Number => v.GetRawText(),
                    _ => null,
                }
                : null;
    }

    /// <summary>Listening sockets from <c>netstat -an</c> on Windows (<c>TCP 0.0.0.0:11434 ... LISTENING</c>) or macOS (<c>tcp4 ... *.11434 ... LISTEN</c>).</summary>
    internal static IEnumerable<ListeningSocket> ParseNetstat(string text, int port)
    {
        foreach (var line in text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 4 || !(f[^1] is "LISTENING" or "LISTEN"))
            {
                continue;
            }

            var windows = f[0] == "TCP"; // Windows: "TCP local foreign LISTENING"; macOS: "tcp4 recv send local foreign LISTEN"
            var local = windows ? f[1] : f[3];
            var sep = windows ? local.LastIndexOf(':') : local.LastIndexOf('.');
            if (sep <= 0 || !int.TryParse(local[(sep + 1)..], out var p) || p != port)
            {
                continue;
            }

            var addr = local[..sep].Trim('[', ']');
            var v6 = f[0].EndsWith('6') || addr.Contains(':');
            var ip = addr == "*" ? (v6 ? IPAddress.IPv6Any : IPAddress.Any) : IPAddress.TryParse(addr.Split('%')[0], out var a) ? a : null;
            if (ip is not null)
            {
                yield return new ListeningSocket(ip, p, -1);
            }
        }
    }

    // ---- 1. bind address ------------------------------------------------------------------------------------

    private ExposureFinding CheckBind(SourcedValue host, OllamaHost parsed, int port, IReadOnlyList<ListeningSocket> sockets, string socketSource)
    {
        var fix = $"Set-OllamaHardening -BindAddress 127.0.0.1:{OllamaHost.DefaultPort} -Restart";
        var config = $"OLLAMA_HOST={(host.Value is null ? "(unset)" : "'" + host.Value + "'")} from {host.Source} -> listens on {parsed.ListenAddress}";
        var listening = sockets.Count == 0 ? $"nothing listens on port {port}" : "listening on " + string.Join(", ", sockets.Select(s => s.ToString()).Distinct());
        var pids = sockets.Where(s => s.Pid is not null).Select(s => s.Pid!.Value.ToString(CultureInfo.InvariantCulture)).Distinct().ToList();
        listening += $" (sockets from {socketSource}{(pids.Count > 0 ? "; owning process " + string.Join(", ", pids) : "")})";
        var wide = sockets.Where(s => !s.IsLoopback).ToList();
        if (parsed.MovesOffDefaultPortByAccident)
        {
            return Finding(ExposureChecks.BindAddress, ExposureStatus.Warn, $"{config}; {parsed.Warnings[0]} {listening}.", fix, port);
        }

        if (wide.Count > 0)
        {
            var mismatch = parsed.IsLoopback ? " The configuration says loopback, so another process listens there or Ollama was not restarted since the change." : "";
            return Finding(ExposureChecks.BindAddress, ExposureStatus.Warn,
                $"Reachable beyond loopback: {listening} ({config}).{mismatch} Only do this behind a firewall rule and an authenticating proxy (see the Firewall and Authentication checks).", fix, port);
        }

        if (!parsed.IsLoopback)
        {
            return Finding(ExposureChecks.BindAddress, ExposureStatus.Warn, sockets.Count == 0
                ? $"{config}; not running now ({listening}), but it will listen beyond loopback when it starts."
                : $"{config}; {listening} now, but it will listen beyond loopback after the next restart.", fix, port);
        }

        return Finding(ExposureChecks.BindAddress, ExposureStatus.Pass, $"Loopback only: {config}; {listening}.", fix, port);
    }

    // ---- 2. firewall ----------------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckFirewallAsync(bool exposed, int port, CancellationToken ct)
    {
        var fix = $"Set-OllamaFirewallRule -AllowFrom <trusted client CIDRs> -Port {port}";
        if (!exposed)
        {
            return Finding(ExposureChecks.Firewall, ExposureStatus.NotApplicable, "Ollama listens on loopback only; a firewall rule is needed once it is bound beyond loopback.", fix, port);
        }

        var status = await options.Firewall.GetStatusAsync(port, ct).ConfigureAwait(false);
        var who = status.Backend is null ? "" : $" ({status.Backend})";
        return status.Restricted switch
        {
            true => Finding(ExposureChecks.Firewall, ExposureStatus.Pass, $"A firewall rule restricts port {port}{who}: {status.Detail}" +
                (status.AllowFrom.Count > 0 ? " Allowed: " + string.Join(", ", status.AllowFrom) + "." : ""), fix, port),
            false => Finding(ExposureChecks.Firewall, ExposureStatus.Fail, $"Port {port} is reachable beyond loopback and no active firewall rule restricts it{who}: {status.Detail}", fix, port),
            _ => Finding(ExposureChecks.Firewall, ExposureStatus.Warn, $"Whether a firewall restricts port {port} {status.Detail}. Check with Get-OllamaFirewallRule -Port {port}.", fix, port),
        };
    }

    // ---- 3. origins -----------------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckOriginsAsync(CancellationToken ct)
    {
        var o = await EffectiveAsync("OLLAMA_ORIGINS", ct).ConfigureAwait(false);
        const string fix = "Set-OllamaHardening -AllowedOrigins 'https://<your web app>'";
        if (string.IsNullOrWhiteSpace(o.Value))
        {
            return Finding(ExposureChecks.Origins, ExposureStatus.Warn, $"OLLAMA_ORIGINS is not set ({o.Source}): only Ollama's built-in local origins may call it from a browser. The checklist asks for an explicit list.", fix);
        }

        var entries = o.Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (entries.Any(e => e == "*" || e.EndsWith("://*", StringComparison.Ordinal)))
        {
            return Finding(ExposureChecks.Origins, ExposureStatus.Fail, $"OLLAMA_ORIGINS '{o.Value}' ({o.Source}) contains a wildcard: any web page a user opens can call Ollama from the browser.", fix);
        }

        return Finding(ExposureChecks.Origins, ExposureStatus.Pass, $"OLLAMA_ORIGINS '{o.Value}' ({o.Source}) lists explicit origins.", fix);
    }

    // ---- 4. web UI ------------------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckWebUiAsync(CancellationToken ct)
    {
        var v = await EffectiveAsync("OLLAMA_NO_WEBSERVER", ct).ConfigureAwait(false);
        var (ui, _) = await ListeningAsync(int.Parse(WebUiPort, CultureInfo.InvariantCulture), ct).ConfigureAwait(false);
        var wide = ui.Where(s => !s.IsLoopback).Select(s => s.ToString()).Distinct().ToList();
        const string fix = "Set-OllamaHardening -DisableWebUI -Restart";
        const string note = "(Ollama's server has no web UI and does not read OLLAMA_NO_WEBSERVER; the desktop app's UI listens on 3001, so reachability is what counts.)";
        if (wide.Count > 0)
        {
            return Finding(ExposureChecks.WebUI, ExposureStatus.Fail, $"A UI port is reachable beyond loopback: {string.Join(", ", wide)}. {note}", fix, 3001);
        }

        var set = v.Value is "1" or "true" or "TRUE" or "True";
        return set
            ? Finding(ExposureChecks.WebUI, ExposureStatus.Pass, $"OLLAMA_NO_WEBSERVER={v.Value} ({v.Source}) and no UI port is reachable beyond loopback. {note}", fix, 3001)
            : Finding(ExposureChecks.WebUI, ExposureStatus.Warn, $"No UI port is reachable beyond loopback, but OLLAMA_NO_WEBSERVER is not set ({v.Source}) as the checklist asks. {note}", fix, 3001);
    }

    // ---- 5. service user ------------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckServiceUserAsync(int port, CancellationToken ct)
    {
        const string fix = "Set-OllamaHardening -ServiceUser ollama -Restart";
        switch (options.Platform)
        {
            case HardeningPlatform.Linux:
                var procs = Processes.Where(p => p.Uid >= 0).ToList();
                if (procs.FirstOrDefault(p => p.Uid == 0) is { } rootProc)
                {
                    return Finding(ExposureChecks.ServiceUser, ExposureStatus.Fail, $"ollama serve (pid {rootProc.Pid}) runs as root.", fix);
                }

                var socketOwners = ProcFs.Listening(R("/proc"), port).Select(s => s.Uid).Where(u => u >= 0).Distinct().ToList();
                if (procs.Count == 0 && socketOwners.Contains(0))
                {
                    return Finding(ExposureChecks.ServiceUser, ExposureStatus.Fail, $"The socket listening on port {port} belongs to root (uid 0).", fix, port);
                }

                if (procs.Count > 0)
                {
                    return Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, "ollama serve runs as " + string.Join(", ", procs.Select(p => $"{ProcFs.UserName(options.Root, p.Uid)} (pid {p.Pid})")) + ".", fix);
                }

                if (Service.Exists)
                {
                    var user = Service.Directive("User");
                    return user is null or "root" or "0"
                        ? Finding(ExposureChecks.ServiceUser, ExposureStatus.Fail, user is null ? "ollama.service sets no User=, so systemd runs it as root." : $"ollama.service runs as {user} ({Service.Directives["User"].File}).", fix)
                        : Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, $"ollama.service runs as {user} ({Service.Directives["User"].File}).", fix);
                }

                if (socketOwners.Count > 0)
                {
                    return Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, $"The socket on port {port} belongs to {string.Join(", ", socketOwners.Select(u => ProcFs.UserName(options.Root, u)))}.", fix, port);
                }

                return Finding(ExposureChecks.ServiceUser, ExposureStatus.NotApplicable, "No ollama service or process was found.", fix);
            case HardeningPlatform.Windows when options.IsLive:
                var qc = await options.Runner.RunAsync(CommandInvocation.Of("sc.exe", "qc", "Ollama"), ct).ConfigureAwait(false);
                var m = StartName().Match(qc.StandardOutput);
                if (!qc.Succeeded || !m.Success)
                {
                    return Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, "No Ollama service is installed: the Ollama app runs as the signed-in user.", fix);
                }

                var account = m.Groups[1].Value.Trim();
                return account.Equals("LocalSystem", StringComparison.OrdinalIgnoreCase) || account.EndsWith("\\SYSTEM", StringComparison.OrdinalIgnoreCase)
                    ? Finding(ExposureChecks.ServiceUser, ExposureStatus.Fail, $"The Ollama service runs as {account}. Use a dedicated low-privilege account (sc.exe config Ollama obj= ...).", "sc.exe config Ollama obj= 'NT SERVICE\\Ollama'")
                    : Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, $"The Ollama service runs as {account}.", fix);
            case HardeningPlatform.MacOS when options.IsLive:
                var ps = await options.Runner.RunAsync(CommandInvocation.Of("ps", "-axo", "user=,comm="), ct).ConfigureAwait(false);
                var owners = ps.StandardOutput.Split('\n').Select(l => l.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries))
                    .Where(f => f.Length == 2 && Path.GetFileName(f[1].Trim()) == "ollama").Select(f => f[0]).Distinct().ToList();
                return owners.Count == 0 ? Finding(ExposureChecks.ServiceUser, ExposureStatus.NotApplicable, "No ollama process is running.", fix)
                    : owners.Contains("root") ? Finding(ExposureChecks.ServiceUser, ExposureStatus.Fail, "ollama runs as root.", "Run Ollama as the signed-in user (the Ollama app), not from a root LaunchDaemon.")
                    : Finding(ExposureChecks.ServiceUser, ExposureStatus.Pass, "ollama runs as " + string.Join(", ", owners) + ".", fix);
            default:
                return Finding(ExposureChecks.ServiceUser, ExposureStatus.NotApplicable, "Not determinable for an offline root on this platform.", fix);
        }
    }

    // ---- 6. authentication ----------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckAuthenticationAsync(OllamaHost parsed, int port, IReadOnlyList<ListeningSocket> sockets, IReadOnlyList<GatewayFound> gateways, CancellationToken ct)
    {
        var fix = $"Set-OllamaHardening -BindAddress 127.0.0.1:{OllamaHost.DefaultPort} -Restart";
        var why = "Ollama has no authentication of its own; remote clients need an authenticating reverse proxy, such as the OllamaContinuity gateway with its client tokens (Start-AiGateway -BindAddress <address> -Force), with Ollama bound to loopback behind it."
            + (gateways.FirstOrDefault() is { } gw ? $" The OllamaContinuity gateway on {gw.Where} is one, but it is bypassed while Ollama itself is reachable." : "");
        var wide = sockets.Where(s => !s.IsLoopback).ToList();
        if (wide.Count == 0)
        {
            if (sockets.Count == 0 && !parsed.IsLoopback)
            {
                return Finding(ExposureChecks.Authentication, ExposureStatus.Warn, $"Not running now, but configured to listen on {parsed.ListenAddress}: the API will answer unauthenticated beyond loopback. {why}", fix, port);
            }

            var (status, detail) = LoopbackAuthentication(gateways);
            return Finding(ExposureChecks.Authentication, status, detail, status == ExposureStatus.Fail ? ExposureScanner.GatewayOpenRemediation : fix, port);
        }

        // Probe through loopback when a wildcard socket accepts it; a specific address only on the live machine.
        var wildcard = wide.FirstOrDefault(s => s.IsWildcard);
        IPAddress? probeAt = wildcard is not null
            ? (wildcard.Address.AddressFamily == AddressFamily.InterNetworkV6 && !sockets.Any(s => s.Address.AddressFamily == AddressFamily.InterNetwork) ? IPAddress.IPv6Loopback : IPAddress.Loopback)
            : options.IsLive ? wide[0].Address : null;
        var where = string.Join(", ", wide.Select(s => s.ToString()).Distinct());
        if (probeAt is null)
        {
            return Finding(ExposureChecks.Authentication, ExposureStatus.Fail, $"The API listens beyond loopback ({where}) and Ollama does not authenticate. {why}", fix, port);
        }

        var p = await ExposureScanner.ProbeAsync(probeAt, port, options.ProbeTimeout, options.SocketFactory, ct).ConfigureAwait(false);
        if (p.IsOllama && p.TagsStatus is 401 or 403)
        {
            return Finding(ExposureChecks.Authentication, ExposureStatus.Pass, $"The API on {where} asks for authentication (HTTP {p.TagsStatus} on /api/tags).", fix, port);
        }

        if (p.IsOllama)
        {
            return Finding(ExposureChecks.Authentication, ExposureStatus.Fail,
                $"The API listens beyond loopback ({where}) and answered without authentication: Ollama {p.Version ?? "(version hidden)"}, {p.Models.Count} model(s) listed" +
                (p.Models.Count > 0 ? ": " + string.Join(", ", p.Models) : "") + $". {why}", fix, port) with { Version = p.Version ?? "", Models = string.Join(", ", p.Models), ModelCount = p.Models.Count };
        }

        return p.Open
            ? Finding(ExposureChecks.Authentication, ExposureStatus.Warn, $"Port {port} listens beyond loopback ({where}) but the server there is not Ollama ({p.Problem}); check that it authenticates.", fix, port)
            : Finding(ExposureChecks.Authentication, ExposureStatus.Fail, $"The API listens beyond loopback ({where}); the probe through {probeAt} got no answer ({p.Problem}), and Ollama does not authenticate. {why}", fix, port);
    }

    // ---- 7. logs --------------------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckLogsAsync(CancellationToken ct)
    {
        const string fixLinux = "mkdir -p /var/log/journal && systemctl restart systemd-journald  # persistent journald storage for ollama.service";
        var now = options.Time.GetUtcNow();
        if (Linux && options.IsLive)
        {
            var j = await options.Runner.RunAsync(CommandInvocation.Of("journalctl", "-u", HardeningPlanner.ServiceName, "-n", "1", "--no-pager", "-o", "short-iso",
                "--since", "-" + ((int)Math.Ceiling(options.LogMaxAge.TotalDays)).ToString(CultureInfo.InvariantCulture) + "d"), ct).ConfigureAwait(false);
            var line = j.StandardOutput.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith("--", StringComparison.Ordinal));
            if (j.Succeeded && line is not null)
            {
                return Finding(ExposureChecks.Logs, ExposureStatus.Pass, $"journald holds recent ollama.service logs (latest: {Trim(line, 120)}).", fixLinux);
            }
        }

        var candidates = new List<string>();
        switch (options.Platform)
        {
            case HardeningPlatform.Linux:
                candidates.AddRange(Glob(R("/var/log/journal"), "*.journal", recurse: true));
                candidates.AddRange(Glob(R("/var/log"), "ollama*.log"));
                candidates.Add(R(HardeningPlanner.LinuxServiceHome + "/.ollama/logs/server.log"));
                break;
            case HardeningPlatform.MacOS:
                candidates.Add(Path.Combine(Home(), ".ollama/logs/server.log"));
                break;
            case HardeningPlatform.Windows:
                candidates.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "Ollama", "server.log"));
                break;
        }

        var files = candidates.Where(File.Exists).Select(f => (File: f, Age: now - File.GetLastWriteTimeUtc(f))).OrderBy(f => f.Age).ToList();
        var fix = Linux ? fixLinux : "Keep Ollama's server.log (Ollama writes it by itself) and collect it with your log agent.";
        if (files.Count == 0)
        {
            return Finding(ExposureChecks.Logs, ExposureStatus.Warn, "No Ollama logs were found (no ollama.service entries in journald, no persistent journal, no server.log).", fix);
        }

        var newest = files[0];
        return newest.Age <= options.LogMaxAge
            ? Finding(ExposureChecks.Logs, ExposureStatus.Pass, $"Logs are being written: {newest.File} ({Days(newest.Age)} old).", fix)
            : Finding(ExposureChecks.Logs, ExposureStatus.Warn, $"The newest log, {newest.File}, was last written {Days(newest.Age)} ago (more than {options.LogMaxAge.TotalDays:0} days).", fix);
    }

    // ---- 8. disk encryption ---------------------------------------------------------------------------------

    private async Task<ExposureFinding> CheckDiskEncryptionAsync(CancellationToken ct)
    {
        var models = await ModelsDirectoryAsync(ct).ConfigureAwait(false);
        var fix = options.Platform switch
        {
            HardeningPlatform.Windows => "Enable-BitLocker -MountPoint C: -EncryptionMethod XtsAes256 -RecoveryPasswordProtector",
            HardeningPlatform.MacOS => "sudo fdesetup enable",
            _ => $"Move {models} to a LUKS volume (cryptsetup luksFormat, cryptsetup open, mkfs, mount) and point OLLAMA_MODELS at it",
        };
        switch (options.Platform)
        {
            case HardeningPlatform.Windows when options.IsLive:
                var drive = models.Length >= 2 && models[1] == ':' && char.IsAsciiLetter(models[0]) ? models[..2].ToUpperInvariant() : "C:";
                var bde = await options.Runner.RunAsync(CommandInvocation.Of("manage-bde.exe", "-status", drive), ct).ConfigureAwait(false);
                return bde.StandardOutput.Contains("Protection On", StringComparison.OrdinalIgnoreCase)
                    ? Finding(ExposureChecks.DiskEncryption, ExposureStatus.Pass, $"BitLocker protects {drive} (models: {models}).", fix)
                    : bde.StandardOutput.Contains("Protection Off", StringComparison.OrdinalIgnoreCase)
                        ? Finding(ExposureChecks.DiskEncryption, ExposureStatus.Fail, $"BitLocker protection is off on {drive} (models: {models}).", $"Enable-BitLocker -MountPoint {drive} -EncryptionMethod XtsAes256 -RecoveryPasswordProtector")
                        : Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, $"Could not determine BitLocker status of {drive} (manage-bde exit {bde.ExitCode}; it needs an elevated shell).", fix);
            case HardeningPlatform.MacOS when options.IsLive:
                var fv = await options.Runner.RunAsync(CommandInvocation.Of("fdesetup", "status"), ct).ConfigureAwait(false);
                return fv.StandardOutput.Contains("FileVault is On", StringComparison.Ordinal)
                    ? Finding(ExposureChecks.DiskEncryption, ExposureStatus.Pass, $"FileVault is on (models: {models}).", fix)
                    : fv.StandardOutput.Contains("FileVault is Off", StringComparison.Ordinal)
                        ? Finding(ExposureChecks.DiskEncryption, ExposureStatus.Fail, $"FileVault is off (models: {models}).", "sudo fdesetup enable")
                        : Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, $"Could not determine FileVault status (fdesetup exit {fv.ExitCode}).", fix);
            case HardeningPlatform.Linux:
                return LinuxDiskEncryption(models, fix);
            default:
                return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, "Could not be determined for an offline root on this platform.", fix);
        }
    }

    private async Task<string> ModelsDirectoryAsync(CancellationToken ct)
    {
        var m = await EffectiveAsync("OLLAMA_MODELS", ct).ConfigureAwait(false);
        if (!string.IsNullOrWhiteSpace(m.Value))
        {
            return m.Value;
        }

        if (Linux && (Service.Exists || Processes.Any(p => ProcFs.UserName(options.Root, p.Uid) == "ollama")))
        {
            return HardeningPlanner.LinuxModelsDirectory;
        }

        return Path.Combine(Home(), ".ollama", "models");
    }

    private string Home() => options.SessionEnvironment.TryGetValue("HOME", out var h) && h.Length > 0 ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private ExposureFinding LinuxDiskEncryption(string models, string fix)
    {
        var mountinfo = R("/proc/self/mountinfo");
        if (!File.Exists(mountinfo))
        {
            return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, $"Could not be determined: {mountinfo} is missing.", fix);
        }

        // Fields: id parent major:minor root mountpoint options... - fstype source superoptions
        (string Point, string Dev, string FsType, string Source)? best = null;
        foreach (var line in File.ReadLines(mountinfo))
        {
            var f = line.Split(' ');
            var dash = Array.IndexOf(f, "-");
            if (f.Length < 5 || dash < 0 || dash + 2 >= f.Length)
            {
                continue;
            }

            var point = f[4].Replace("\\040", " ", StringComparison.Ordinal);
            if (HardeningPlanner.IsUnder(models, point) && (best is null || point.Length >= best.Value.Point.Length))
            {
                best = (point, f[2], f[dash + 1], f[dash + 2]);
            }
        }

        if (best is not { } mount)
        {
            return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, $"Could not be determined: no mount holds {models}.", fix);
        }

        var on = $"{models} is on {mount.Source} ({mount.FsType}, mounted at {mount.Point})";
        var device = R("/sys/dev/block/" + mount.Dev);
        if (!Directory.Exists(device) && mount.Source.StartsWith("/dev/mapper/", StringComparison.Ordinal))
        {
            var name = mount.Source["/dev/mapper/".Length..];
            device = Glob(R("/sys/class/block"), "dm-*", dirs: true).FirstOrDefault(d => ReadTrim(Path.Combine(d, "dm/name")) == name) ?? device;
        }

        if (!Directory.Exists(device))
        {
            return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Warn, $"Could not be determined: {on}, which is not a block device this audit can follow (lsblk -o NAME,TYPE,FSTYPE shows the stack).", fix);
        }

        var chain = new List<string>();
        if (FindCrypt(device, chain, 0) is { } crypt)
        {
            return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Pass, $"{on}, encrypted with dm-crypt ({crypt}; stack: {string.Join(" <- ", chain)}).", fix);
        }

        return Finding(ExposureChecks.DiskEncryption, ExposureStatus.Fail, $"{on}; no dm-crypt/LUKS layer under it (stack: {string.Join(" <- ", chain)}).", fix);
    }

    /// <summary>Follows a block device and its slaves down the stack; returns the dm-crypt layer's name, if any.</summary>
    private string? FindCrypt(string deviceDir, List<string> chain, int depth)
    {
        if (depth > 8)
        {
            return null;
        }

        var name = ReadTrim(Path.Combine(deviceDir, "dm/name")) ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(ResolvedName(deviceDir)));
        chain.Add(name);
        var uuid = ReadTrim(Path.Combine(deviceDir, "dm/uuid"));
        if (uuid is not null && uuid.StartsWith("CRYPT-", StringComparison.Ordinal))
        {
            return name;
        }

        foreach (var slave in Glob(Path.Combine(deviceDir, "slaves"), "*", dirs: true))
        {
            var slaveDir = R("/sys/class/block/" + Path.GetFileName(slave));
            if (FindCrypt(Directory.Exists(slaveDir) ? slaveDir : slave, chain, depth + 1) is { } c)
            {
                return c;
            }
        }

        return null;
    }

    private static string ResolvedName(string dir)
    {
        try
        {
            return new DirectoryInfo(dir).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? dir;
        }
        catch (IOException)
        {
            return dir;
        }
    }

    // ---- helpers --------------------------------------------------------------------------------------------

    private static string? ReadTrim(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static IEnumerable<string> Glob(string dir, string pattern, bool recurse = false, bool dirs = false)
    {
        try
        {
            return !Directory.Exists(dir) ? []
                : dirs ? Directory.EnumerateDirectories(dir, pattern).ToList()
                : Directory.EnumerateFiles(dir, pattern, recurse ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static string Days(TimeSpan t) => t.TotalDays >= 1 ? $"{t.TotalDays:0.#} days" : t.TotalHours >= 1 ? $"{t.TotalHours:0} h" : $"{Math.Max(0, t.TotalMinutes):0} min";

    private static string Trim(string s, int n) => s.Length <= n ? s : s[..(n - 3)] + "...";

    [GeneratedRegex(@"SERVICE_START_NAME\s*:\s*(.+)")]
    private static partial Regex StartName();
}
