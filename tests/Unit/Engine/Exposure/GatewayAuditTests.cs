using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Exposure;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Exposure;

/// <summary>
/// A stand-in for the gateway on a real loopback socket: every answer carries the gateway's request-id header, and
/// either a 401 with its WWW-Authenticate realm (tokens required) or 200 with an Ollama model list (a gateway-like
/// server that answers without a token). The real gateway process is started by the PowerShell tests (Start-AiGateway).
/// </summary>
internal sealed class StandInGateway : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public StandInGateway(bool requireToken, bool marker = true)
    {
        RequireToken = requireToken;
        Marker = marker;
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public bool RequireToken { get; }
    public bool Marker { get; }
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public ConcurrentQueue<string> Paths { get; } = new();

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var stream = client.GetStream();
                    var request = await FakeAiServer.ReadRequestAsync(stream, _stop.Token);
                    if (request is null)
                    {
                        return;
                    }

                    Paths.Enqueue(request.Path);
                    var (status, body, extra) = RequireToken
                        ? ("401 Unauthorized", """{"error":"A client token is required: send 'Authorization: Bearer <token>' or 'x-api-key: <token>'."}""", "WWW-Authenticate: Bearer realm=\"OllamaContinuity gateway\"\r\n")
                        : request.Path == "/api/tags" ? ("200 OK", """{"models":[{"name":"llama3.1:8b"},{"name":"cloud-model"}]}""", "")
                        : ("404 Not Found", """{"error":"There is no GET / on this gateway."}""", "");
                    var marker = Marker ? "X-OllamaContinuity-Request-Id: 0123456789abcdef0123456789abcdef\r\n" : "";
                    var bytes = Encoding.UTF8.GetBytes(body);
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(
                        $"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {bytes.Length}\r\n{marker}{extra}Connection: close\r\n\r\n"));
                    await stream.WriteAsync(bytes);
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}

/// <summary>
/// The local audit's gateway items on fixture trees (/proc of a host running the gateway) whose sockets are stand-ins
/// on real loopback ports, and the network probe's recognition of a gateway.
/// </summary>
public sealed class GatewayAuditTests : IDisposable
{
    private const int GatewayPid = 2345;
    private const long GatewayInode = 77001;
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 6, 0, 0, TimeSpan.Zero);
    private readonly HostFixture _h = new();
    private readonly RecordingCommandRunner _runner = new();

    public void Dispose() => _h.Dispose();

    /// <summary>A hardened Ollama on 127.0.0.1:11434, and the gateway process with a socket on <paramref name="bind"/>:<paramref name="port"/>.</summary>
    private void HostWithGateway(string bind, int port, bool ownsSocket = true, bool readableFds = true, int portArgument = 0)
    {
        _h.Passwd()
            .Unit("User=ollama\nEnvironment=\"OLLAMA_HOST=127.0.0.1:11434\"\n")
            .File("proc/net/tcp", HostFixture.TcpHeader + HostFixture.Listen4("127.0.0.1", 11434, 999)
                + HostFixture.Listen4(bind, port, 1000, 1).Replace(" 1001 1 ", $" {GatewayInode} 1 ", StringComparison.Ordinal))
            .File($"proc/{GatewayPid}/cmdline", string.Join('\0', "/usr/share/dotnet/dotnet", "/opt/oc/Gateway/OllamaContinuity.Gateway.dll", "--bind", bind, "--port", portArgument.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--tokens-file", "/home/app/.local/state/OllamaContinuity/gateway-tokens.json") + "\0")
            .File($"proc/{GatewayPid}/status", "Name:\tdotnet\nUid:\t1000\t1000\t1000\t1000\n");
        if (!readableFds)
        {
            return; // another user's process: /proc/<pid>/fd cannot be read
        }

        Directory.CreateDirectory(Path.Combine(_h.Root, $"proc/{GatewayPid}/fd"));
        File.CreateSymbolicLink(Path.Combine(_h.Root, $"proc/{GatewayPid}/fd/3"), "/dev/null");
        File.CreateSymbolicLink(Path.Combine(_h.Root, $"proc/{GatewayPid}/fd/7"), ownsSocket ? $"socket:[{GatewayInode}]" : "socket:[5]");
    }

    private async Task<List<ExposureFinding>> Audit(bool live = true, string? stateFile = null, FirewallStatus? firewall = null)
    {
        var audit = new LocalAudit(new LocalAuditOptions
        {
            Root = _h.Root,
            Live = live,
            Platform = HardeningPlatform.Linux,
            Runner = _runner,
            Firewall = new DelegateFirewallStatusProvider((_, _) => Task.FromResult(firewall ?? FirewallStatus.Unknown("could not be determined (test)"))),
            SessionEnvironment = new Dictionary<string, string> { ["HOME"] = "/root" },
            Time = new FakeTimeProvider(Now),
            ProbeTimeout = TimeSpan.FromSeconds(2),
            GatewayStateFile = stateFile ?? Path.Combine(_h.Root, "no-gateway.json"),
        });
        var findings = (await audit.RunAsync()).ToList();
        // The eight checklist items come first, in order; the gateway's rows follow.
        Assert.Equal(
            [ExposureChecks.BindAddress, ExposureChecks.Firewall, ExposureChecks.Origins, ExposureChecks.WebUI, ExposureChecks.ServiceUser, ExposureChecks.Authentication, ExposureChecks.Logs, ExposureChecks.DiskEncryption],
            findings.Take(8).Select(f => f.Check));
        Assert.All(findings.Where(f => f.Status is ExposureStatus.Fail or ExposureStatus.Warn), f => Assert.NotEqual("", f.Remediation));
        return findings;
    }

    private static ExposureFinding One(List<ExposureFinding> f, string check) => Assert.Single(f, x => x.Check == check);

    [Fact]
    public async Task A_network_gateway_that_asks_for_tokens_in_front_of_a_loopback_Ollama_passes_the_reverse_proxy_item()
    {
        await using var gw = new StandInGateway(requireToken: true);
        HostWithGateway("0.0.0.0", gw.Port);

        var f = await Audit(firewall: new FirewallStatus(true, "ufw allows 10.1.0.0/16 only.") { Backend = "ufw", AllowFrom = ["10.1.0.0/16"] });

        Assert.Equal(["GatewayBind", "GatewayAuth", "GatewayFirewall"], f.Skip(8).Select(x => x.Check));
        var bind = One(f, ExposureChecks.GatewayBind);
        Assert.Equal((ExposureStatus.Pass, gw.Port), (bind.Status, bind.Port));
        Assert.Contains($"beyond loopback (0.0.0.0:{gw.Port}; process {GatewayPid}", bind.Detail, StringComparison.Ordinal);
        var auth = One(f, ExposureChecks.GatewayAuth);
        Assert.Equal(ExposureStatus.Pass, auth.Status);
        Assert.Contains($"through 127.0.0.1:{gw.Port}, answered HTTP 401 with the gateway's marker", auth.Detail, StringComparison.Ordinal);
        Assert.Equal(["/api/tags"], gw.Paths); // one request, without a token
        Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayFirewall).Status);
        var proxy = One(f, ExposureChecks.Authentication);
        Assert.Equal(ExposureStatus.Pass, proxy.Status);
        Assert.Contains("the network reaches it only through the OllamaContinuity gateway", proxy.Detail, StringComparison.Ordinal);
        Assert.Contains("authenticating reverse proxy", proxy.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_like_server_that_answers_without_a_token_fails_and_so_does_the_reverse_proxy_item()
    {
        await using var gw = new StandInGateway(requireToken: false);
        HostWithGateway("0.0.0.0", gw.Port);

        var f = await Audit(firewall: new FirewallStatus(false, "no rule mentions the port.") { Backend = "nftables" });

        var auth = One(f, ExposureChecks.GatewayAuth);
        Assert.Equal(ExposureStatus.Fail, auth.Status);
        Assert.Contains("without a client token (HTTP 200, 2 model(s) listed: llama3.1:8b, cloud-model)", auth.Detail, StringComparison.Ordinal);
        Assert.Equal(("llama3.1:8b, cloud-model", 2), (auth.Models, auth.ModelCount));
        Assert.Equal(ExposureScanner.GatewayOpenRemediation, auth.Remediation);
        Assert.Equal(ExposureStatus.Warn, One(f, ExposureChecks.GatewayBind).Status);
        Assert.Equal(ExposureStatus.Fail, One(f, ExposureChecks.GatewayFirewall).Status);
        var proxy = One(f, ExposureChecks.Authentication);
        Assert.Equal(ExposureStatus.Fail, proxy.Status);
        Assert.Contains("answers without a client token", proxy.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_loopback_gateway_passes_without_a_firewall_and_the_item_says_it_serves_this_machine()
    {
        await using var gw = new StandInGateway(requireToken: true);
        HostWithGateway("127.0.0.1", gw.Port);

        var f = await Audit();

        Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayBind).Status);
        Assert.Contains("loopback only", One(f, ExposureChecks.GatewayBind).Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayAuth).Status);
        Assert.Equal(ExposureStatus.NotApplicable, One(f, ExposureChecks.GatewayFirewall).Status);
        Assert.Contains("gateway listens on loopback only", One(f, ExposureChecks.Authentication).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_offline_root_finds_the_gateway_but_sends_it_nothing()
    {
        await using var gw = new StandInGateway(requireToken: false);
        HostWithGateway("0.0.0.0", gw.Port);

        var f = await Audit(live: false);

        Assert.Empty(gw.Paths);
        var auth = One(f, ExposureChecks.GatewayAuth);
        Assert.Equal(ExposureStatus.Warn, auth.Status);
        Assert.Contains("Not probed: an offline audit (-Root) sends no request", auth.Detail, StringComparison.Ordinal);
        Assert.Contains("gateway-tokens.json", auth.Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Warn, One(f, ExposureChecks.GatewayBind).Status); // beyond loopback, tokens not seen
        Assert.Equal(ExposureStatus.Warn, One(f, ExposureChecks.GatewayFirewall).Status); // firewall not determined offline
        var proxy = One(f, ExposureChecks.Authentication);
        Assert.Equal(ExposureStatus.Pass, proxy.Status); // loopback-only Ollama, as before; the gateway is not credited
        Assert.Contains("not verified to ask for client tokens", proxy.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_gateway_process_that_owns_no_listening_socket_is_not_credited()
    {
        await using var gw = new StandInGateway(requireToken: true);
        HostWithGateway("0.0.0.0", gw.Port, ownsSocket: false);

        var f = await Audit();

        Assert.Empty(gw.Paths);
        var row = Assert.Single(f.Skip(8));
        Assert.Equal((ExposureChecks.GatewayBind, ExposureStatus.NotApplicable), (row.Check, row.Status));
        Assert.Contains("listens on no TCP port", row.Detail, StringComparison.Ordinal);
        Assert.Contains("No authenticating gateway was found", One(f, ExposureChecks.Authentication).Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Without_readable_descriptors_the_socket_on_its_port_must_belong_to_its_uid(bool portKnown)
    {
        await using var gw = new StandInGateway(requireToken: true);
        HostWithGateway("0.0.0.0", gw.Port, readableFds: false, portArgument: portKnown ? gw.Port : 0);

        var f = await Audit();

        if (portKnown)
        {
            Assert.Contains("owned by uid 1000 (its descriptors are not readable)", One(f, ExposureChecks.GatewayBind).Detail, StringComparison.Ordinal);
            Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayAuth).Status);
        }
        else
        {
            Assert.Empty(gw.Paths);
            var row = Assert.Single(f.Skip(8));
            Assert.Equal(ExposureStatus.NotApplicable, row.Status);
            Assert.Contains("its file descriptors cannot be read", row.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_stale_state_file_passes_nothing_even_when_its_port_answers_401()
    {
        // gateway.json names a process that is gone; something else now answers 401 on its port.
        await using var other = new StandInGateway(requireToken: true);
        _h.Passwd().Unit("User=ollama\nEnvironment=\"OLLAMA_HOST=127.0.0.1:11434\"\n")
            .File("proc/net/tcp", HostFixture.TcpHeader + HostFixture.Listen4("127.0.0.1", 11434, 999) + HostFixture.Listen4("0.0.0.0", other.Port, 1000, 1))
            .File("state/gateway.json", $$"""{"pid":4242,"url":"http://0.0.0.0:{{other.Port}}","bind":"0.0.0.0","port":{{other.Port}},"processStartTime":"2026-11-24T05:00:00Z"}""");

        var f = await Audit(stateFile: Path.Combine(_h.Root, "state/gateway.json"));

        Assert.Empty(other.Paths);
        Assert.DoesNotContain(f, x => x.Check is ExposureChecks.GatewayAuth or ExposureChecks.GatewayFirewall);
        var row = Assert.Single(f.Skip(8));
        Assert.Equal((ExposureChecks.GatewayBind, ExposureStatus.NotApplicable, other.Port), (row.Check, row.Status, row.Port));
        Assert.Contains("not running", row.Detail, StringComparison.Ordinal);
        Assert.Contains("stale state file, nothing is credited", row.Detail, StringComparison.Ordinal);
        Assert.Contains("No authenticating gateway was found", One(f, ExposureChecks.Authentication).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_state_file_whose_running_process_does_not_own_the_port_is_not_credited()
    {
        await using var other = new StandInGateway(requireToken: true);
        _h.Passwd().Unit("User=ollama\nEnvironment=\"OLLAMA_HOST=127.0.0.1:11434\"\n")
            .File("proc/net/tcp", HostFixture.TcpHeader + HostFixture.Listen4("0.0.0.0", other.Port, 1000, 1))
            .File("proc/4242/cmdline", "/usr/bin/python3\0-m\0http.server\0")
            .File("state/gateway.json", $$"""{"pid":4242,"url":"http://127.0.0.1:{{other.Port}}","port":{{other.Port}}}""");
        Directory.CreateDirectory(Path.Combine(_h.Root, "proc/4242/fd"));

        var f = await Audit(stateFile: Path.Combine(_h.Root, "state/gateway.json"));

        Assert.Empty(other.Paths);
        var row = Assert.Single(f.Skip(8));
        Assert.Contains($"does not listen on port {other.Port}", row.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ollama_exposed_beside_a_gateway_still_fails_and_says_the_gateway_is_bypassed()
    {
        await using var gw = new StandInGateway(requireToken: true);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama);
        HostWithGateway("0.0.0.0", gw.Port);
        _h.File("proc/net/tcp", HostFixture.TcpHeader + HostFixture.Listen4("0.0.0.0", ollama.Port, 999)
            + HostFixture.Listen4("0.0.0.0", gw.Port, 1000, 1).Replace(" 1001 1 ", $" {GatewayInode} 1 ", StringComparison.Ordinal));

        var audit = new LocalAudit(new LocalAuditOptions
        {
            Root = _h.Root, Live = true, Port = ollama.Port, Platform = HardeningPlatform.Linux, Runner = _runner,
            SessionEnvironment = new Dictionary<string, string>(), Time = new FakeTimeProvider(Now), GatewayStateFile = Path.Combine(_h.Root, "none.json"),
        });
        var f = (await audit.RunAsync()).ToList();

        var proxy = One(f, ExposureChecks.Authentication);
        Assert.Equal(ExposureStatus.Fail, proxy.Status);
        Assert.Contains("it is bypassed while Ollama itself is reachable", proxy.Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayAuth).Status);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Windows_credits_the_state_file_only_when_its_process_owns_the_listening_socket(bool owns)
    {
        await using var gw = new StandInGateway(requireToken: true);
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        var stateFile = Path.Combine(_h.Root, "gateway.json");
        File.WriteAllText(stateFile, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["pid"] = Environment.ProcessId, ["url"] = $"http://0.0.0.0:{gw.Port}", ["port"] = gw.Port, ["processStartTime"] = self.StartTime.ToUniversalTime(),
        }));
        var owner = owns ? Environment.ProcessId : 4;
        _runner.Respond = c => c.FileName == "Get-NetTCPConnection" && c.Arguments.Contains(gw.Port.ToString(System.Globalization.CultureInfo.InvariantCulture))
            ? new CommandResult(0, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object> { ["LocalAddress"] = "0.0.0.0", ["LocalPort"] = gw.Port, ["State"] = "Listen", ["OwningProcess"] = owner }) + "\n", "")
            : new CommandResult(1, "", "nothing listens");
        var audit = new LocalAudit(new LocalAuditOptions
        {
            Platform = HardeningPlatform.Windows, Root = "/", Runner = _runner, Machine = new InMemoryMachineEnvironment(),
            SessionEnvironment = new Dictionary<string, string>(), GatewayStateFile = stateFile, ProbeTimeout = TimeSpan.FromSeconds(2),
        });

        var f = (await audit.RunAsync()).ToList();

        Assert.Contains($"Get-NetTCPConnection -State Listen -LocalPort {gw.Port}", _runner.CommandLines);
        if (owns)
        {
            Assert.Contains("sockets from Get-NetTCPConnection", One(f, ExposureChecks.GatewayBind).Detail, StringComparison.Ordinal);
            Assert.Equal(ExposureStatus.Pass, One(f, ExposureChecks.GatewayAuth).Status);
            Assert.Equal(ExposureStatus.Warn, One(f, ExposureChecks.GatewayFirewall).Status); // no firewall reader given
            Assert.Contains("authenticating reverse proxy", One(f, ExposureChecks.Authentication).Detail, StringComparison.Ordinal);
        }
        else
        {
            Assert.Empty(gw.Paths);
            Assert.Contains($"nothing it owns listens on port {gw.Port}", Assert.Single(f, x => x.Check == ExposureChecks.GatewayBind).Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(f, x => x.Check == ExposureChecks.GatewayAuth);
        }
    }

    [Fact]
    public void The_gateway_command_line_is_read_with_the_gateway_defaults()
    {
        Assert.Equal(("127.0.0.1", 11435, (string?)null), LocalAudit.GatewayArguments(["dotnet", "OllamaContinuity.Gateway.dll"]));
        Assert.Equal(("0.0.0.0", 8080, "/t.json"), LocalAudit.GatewayArguments(["OllamaContinuity.Gateway", "--tokens-file", "/t.json", "--bind", "0.0.0.0", "--port", "8080", "--force"]));
        Assert.Equal(("127.0.0.1", 0, "(tokens on standard input)"), LocalAudit.GatewayArguments(["x.dll", "--port", "0", "--tokens-stdin", "--bind"]));
    }

    [SkippableFact]
    public void The_real_proc_shows_which_listening_socket_this_process_owns()
    {
        Skip.IfNot(OperatingSystem.IsLinux() && File.Exists("/proc/net/tcp"), "needs Linux /proc");
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        try
        {
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            var socket = Assert.Single(ProcFs.Listening("/proc", port));
            Assert.NotEqual(0, socket.Inode);
            var mine = ProcFs.SocketInodes("/proc", Environment.ProcessId);
            Assert.NotNull(mine);
            Assert.Contains(socket.Inode, mine);
            Assert.Null(ProcFs.SocketInodes("/proc", int.MaxValue));
        }
        finally
        {
            l.Stop();
        }
    }

    // ---- the network probe --------------------------------------------------------------------------------

    [Theory]
    [InlineData(true, ExposureStatus.Pass, "asks for a client token (GET /api/tags without one: HTTP 401)")]
    [InlineData(false, ExposureStatus.Fail, "without a client token")]
    public async Task The_network_probe_reports_a_gateway_by_whether_it_asks_for_a_token(bool requireToken, string status, string detail)
    {
        await using var gw = new StandInGateway(requireToken);
        var targets = (await ScanTargets.ExpandAsync(["127.0.0.1"], false, TimeSpan.FromSeconds(1))).Targets;

        var findings = await ExposureScanner.ScanAsync(targets, new ExposureScanOptions { Port = gw.Port, Timeout = TimeSpan.FromSeconds(2) });

        var f = Assert.Single(findings); // reported without -IncludeClosed: a gateway is an AI endpoint either way
        Assert.Equal((ExposureChecks.NetworkExposure, status, "127.0.0.1", gw.Port), (f.Check, f.Status, f.Target, f.Port));
        Assert.Contains("OllamaContinuity gateway", f.Detail, StringComparison.Ordinal);
        Assert.Contains(detail, f.Detail, StringComparison.Ordinal);
        Assert.Equal(requireToken ? "" : "llama3.1:8b, cloud-model", f.Models);
        Assert.Equal(requireToken ? "" : ExposureScanner.GatewayOpenRemediation, f.Remediation);
        Assert.Equal(["/", "/api/tags"], gw.Paths);
    }

    [Fact]
    public async Task A_server_without_the_gateway_marker_is_not_taken_for_a_gateway()
    {
        await using var plain = new StandInGateway(requireToken: false, marker: false);
        var probe = await ExposureScanner.ProbeAsync(IPAddress.Loopback, plain.Port, TimeSpan.FromSeconds(2), null, CancellationToken.None);

        Assert.False(probe.IsGateway);
        Assert.False(probe.IsOllama);
        Assert.Null(ExposureScanner.ToFinding(new ScanTarget(IPAddress.Loopback, "127.0.0.1"), probe, new ExposureScanOptions()));
        Assert.Equal(["/"], plain.Paths);
    }
}
