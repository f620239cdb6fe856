using System.Diagnostics;
using System.Text.Json;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Gateway;
using OllamaContinuity.Native;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Drill;

/// <summary>
/// The drill with -Gateway against the real gateway process (the module's Gateway folder, started with dotnet as
/// Start-AiGateway does) on a loopback port, with the stand-in cloud and Ollama behind it. The gateway has its own
/// state directory, which the drill's contingency block is written to: the block reaches it the way it reaches a
/// gateway of the same user.
/// </summary>
public sealed class GatewayDrillTests : StandInBackendsTest
{
    private const string Token = "oc_drill_test_token_0123456789abcdef";
    private readonly string _dir = TestPaths.New("gateway-drill");
    private WebhookListener _hook = null!;

    private string State => Path.Combine(_dir, "state");
    private string Marker => Path.Combine(_dir, "drill-block.json");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Directory.CreateDirectory(_dir);
        _hook = WebhookListener.Start();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _hook.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>The contingency state the gateway process reads (its OLLAMACONTINUITY_STATE_DIR).</summary>
    private ContingencyService SharedContingency() =>
        new(pathOf: scope => Path.Combine(State, scope == ContinuityScope.Machine ? "Machine" : "User", "contingency.json"));

    private (FailoverEngine Engine, AlertDispatcher Alerts, FailoverDrill Drill, ContingencyService Contingency) Create()
    {
        var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = DrillTests.QuickCircuit });
        var settings = new AlertSettings { WebhookUri = _hook.Uri, SystemLog = false };
        var alerts = new AlertDispatcher(TimeProvider.System, () => settings, engine.HttpPool.CreateClient, null, () => Path.Combine(_dir, "alerts.jsonl"));
        var contingency = SharedContingency();
        ContinuityRuntime.Attach(engine, contingency, null, alerts);
        return (engine, alerts, new FailoverDrill(engine, alerts, () => settings), contingency);
    }

    private DrillOptions Options(DrillGateway? gateway, ContingencyService contingency, DrillBlockMethod method = DrillBlockMethod.Contingency) => new()
    {
        Plan = Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama)),
        BlockMethod = method,
        Duration = TimeSpan.FromSeconds(2),
        Interval = TimeSpan.FromMilliseconds(400),
        RecoveryTimeout = TimeSpan.FromSeconds(20),
        AlertTimeout = TimeSpan.FromSeconds(5),
        MarkerPath = Marker,
        Runner = new RecordingCommandRunner(),
        Gateway = gateway,
        Contingency = contingency,
    };

    [SkippableFact]
    public async Task Contingency_drill_through_the_gateway_process_fails_over_and_comes_back_on_both_paths()
    {
        await using var gw = await GatewayProcess.StartAsync(_dir, State, Cloud, Ollama);
        var (engine, _, drill, contingency) = Create();
        using var _ = engine;
        var cloudBefore = Cloud.Hits;

        var report = await drill.RunAsync(Options(new DrillGateway(gw.Uri, Token), contingency));

        Assert.True(report.Outcome == "Passed", string.Join("\n", report.Failures) + "\n" + gw.Output());
        Assert.Equal(["Preflight", "Block", "Failover", "Alert", "Unblock", "Recovery"], report.Steps.Select(s => s.Name));
        Assert.Equal(gw.Uri.GetLeftPart(UriPartial.Authority), report.Gateway);
        Assert.Contains("the gateway at", report.Steps[0].Detail);

        // Preflight: the gateway served from the cloud.
        var pre = Assert.Single(report.Probes, p => p.Phase == "Preflight" && p.Path == DrillPath.Gateway);
        Assert.Equal("Cloud", pre.Backend);

        // The block: every probe of both paths served by Ollama, the gateway's saying so in its headers.
        var during = report.Probes.Where(p => p.Phase == "Failover").ToArray();
        var viaGateway = during.Where(p => p.Path == DrillPath.Gateway).ToArray();
        var inProcess = during.Where(p => p.Path == DrillPath.InProcess).ToArray();
        Assert.True(viaGateway.Length >= 3, $"only {viaGateway.Length} gateway probes");
        Assert.Equal(inProcess.Length, viaGateway.Length);
        Assert.All(during, p =>
        {
            Assert.Equal("Ollama", p.Backend);
            Assert.Equal("Contingency", p.FailoverReason);
            Assert.True(p.Passed, p.ToString());
        });
        Assert.All(viaGateway, p => Assert.Matches("^[0-9a-f]{32}$", p.RequestId));
        Assert.Contains("ollama: reply to", viaGateway[0].Answer);
        Assert.NotNull(report.GatewayTimeToFailoverSeconds);

        // After: the gateway serves from the cloud again, and nothing reached the cloud during the block.
        var after = Assert.Single(report.Probes, p => p.Phase == "Recovery" && p.Path == DrillPath.Gateway && p.Backend == "Cloud");
        Assert.True(after.Passed);
        Assert.NotNull(report.GatewayTimeToRecoverSeconds);
        Assert.Equal(report.Probes.Count(p => p.Backend == "Cloud"), Cloud.Hits - cloudBefore);

        // The contingency block is gone from the shared state; the alert was its being turned on.
        Assert.Empty(contingency.List(ContinuityScope.Machine).Concat(contingency.List(ContinuityScope.User)));
        Assert.Null(contingency.Evaluate("FailoverDrill", DateTimeOffset.UtcNow));
        Assert.False(File.Exists(Marker));
        Assert.Contains(report.Alerts, a => a.Kind == ContinuityEventKind.ContingencyEnabled && a.Succeeded);

        // Every report format says which path each probe took; the token is in none of them.
        var html = DrillReportWriter.Render(report, DrillReportFormat.Html);
        var csv = DrillReportWriter.Render(report, DrillReportFormat.Csv);
        var json = DrillReportWriter.Render(report, DrillReportFormat.Json);
        var md = DrillReportWriter.Render(report, DrillReportFormat.Markdown);
        Assert.Contains("<th>Path</th>", html);
        Assert.Contains("in process and through the gateway at " + report.Gateway, html);
        Assert.Contains("class=\"probe ollama gateway\"", html);
        Assert.Contains("class=\"probe ollama\"", html);
        Assert.Contains("class=\"recovery gateway\"", html);
        Assert.Contains("data-path=\"Gateway\"", html);
        Assert.Contains("| Failover | Gateway |", md);
        var rows = csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("\"DrillId\",\"Sequence\",\"Phase\",\"Path\",\"Probe\",\"Timestamp\",\"Backend\",\"FailoverReason\",\"FailoverLineLogged\",\"QualityPassed\",\"Passed\",\"LatencyMs\",\"RequestId\",\"Error\"", rows[0]);
        Assert.Equal(report.Probes.Count + 1, rows.Length);
        Assert.Contains(rows, r => r.Contains("\"Failover\",\"Gateway\",", StringComparison.Ordinal) && r.Contains("\"Ollama\",\"Contingency\"", StringComparison.Ordinal));
        var probes = JsonDocument.Parse(json).RootElement.GetProperty("probes").EnumerateArray().ToArray();
        Assert.Equal(viaGateway.Length + 2, probes.Count(p => p.GetProperty("path").GetString() == "Gateway"));
        Assert.DoesNotContain(Token, html + csv + json + md);
    }

    /// <summary>
    /// The real outage for the applications' path: the gateway process, the drill's sockets, the fake Ollama and the
    /// firewall tools in one network namespace, the fake cloud in another. The firewall block fails the gateway's
    /// cloud requests too: its circuit opens, and after the block the drill waits for the gateway's own probe to
    /// close it before a probe through the gateway is served by the cloud again.
    /// </summary>
    [SkippableFact]
    public async Task Firewall_drill_fails_the_gateway_over_for_real_and_waits_for_its_circuit_to_close()
    {
        Require.Root();
        Require.Tool("nft");
        Skip.IfNot(File.Exists(GatewayProcess.Dll), $"the gateway is not built ({GatewayProcess.Dll})");
        var before = HostFirewallSnapshot.Take();
        var n = 200 + Random.Shared.Next(0, 50);
        using (var client = NetNs.Create("gc"))
        using (var cloudNs = NetNs.Create("gk"))
        {
            NetNs.Link(client, [$"10.{n}.9.1/24"], cloudNs, [$"10.{n}.9.2/24"]);
            var cloudIp = System.Net.IPAddress.Parse($"10.{n}.9.2");
            await using var cloud = cloudNs.Run(() => FakeAiServer.Start(FakeApi.OpenAI, "cloud", cloudIp));
            await using var ollama = client.Run(() => FakeAiServer.Start(FakeApi.Ollama, "ollama"));
            await using var gw = await GatewayProcess.StartAsync(_dir, State, cloud, ollama, client);
            using var engine = new FailoverEngine(new FailoverEngineOptions
            {
                Circuit = DrillTests.QuickCircuit,
                SocketFactory = () => client.Run(() => new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp)),
            });
            var drill = new FailoverDrill(engine, null, () => null);
            var options = Options(new DrillGateway(gw.Uri, Token) { SocketFactory = () => client.CreateSocket(System.Net.Sockets.AddressFamily.InterNetwork) }, SharedContingency(), DrillBlockMethod.Firewall) with
            {
                Plan = Harness.Plan(Harness.Cloud(cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(ollama)),
                Firewall = OutboundFirewall.Nftables,
                Runner = new ProcessCommandRunner { Prefix = ["ip", "netns", "exec", client.Name] },
                Duration = TimeSpan.FromSeconds(3),
                CheckAlert = false,
            };

            var report = await drill.RunAsync(options);

            Assert.True(report.Outcome == "Passed", string.Join("\n", report.Failures) + "\n" + gw.Output());
            var viaGateway = report.Probes.Where(p => p.Phase == "Failover" && p.Path == DrillPath.Gateway).ToArray();
            Assert.True(viaGateway.Length >= 3, $"only {viaGateway.Length} gateway probes");
            Assert.All(viaGateway, p => { Assert.Equal("Ollama", p.Backend); Assert.True(p.Passed, p.ToString()); });
            // The gateway saw the outage itself: a refused connection first, then its own circuit open.
            Assert.Equal("ConnectionRefused", viaGateway[0].FailoverReason);
            Assert.Contains(viaGateway, p => p.FailoverReason == "CircuitOpen");
            Assert.Single(report.Probes, p => p.Phase == "Recovery" && p.Path == DrillPath.Gateway && p.Backend == "Cloud");
            Assert.DoesNotContain(report.Probes, p => p.Phase == "Recovery" && p.Path == DrillPath.Gateway && p.Backend != "Cloud");
            Assert.Contains("its circuits are Closed", report.Steps.Single(s => s.Name == "Recovery").Detail);
            Assert.NotNull(report.GatewayTimeToRecoverSeconds);
            Assert.DoesNotContain("ollamacontinuity_drill", client.Exec("nft", "list", "ruleset").Output);
            Assert.False(File.Exists(Marker));
        }

        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    [SkippableFact]
    public async Task A_token_the_gateway_refuses_stops_the_drill_before_anything_is_blocked()
    {
        await using var gw = await GatewayProcess.StartAsync(_dir, State, Cloud, Ollama);
        var (engine, _, drill, contingency) = Create();
        using var _ = engine;
        const string wrong = "oc_not_a_token_of_this_gateway_0000000";

        var report = await drill.RunAsync(Options(new DrillGateway(gw.Uri, wrong), contingency));

        Assert.Equal("NotStarted", report.Outcome);
        Assert.Equal(["Preflight"], report.Steps.Select(s => s.Name));
        Assert.Contains("refused the client token (HTTP 401)", report.Steps[0].Detail);
        Assert.DoesNotContain(report.Probes, p => p.Path == DrillPath.Gateway);
        Assert.Empty(contingency.List(ContinuityScope.Machine).Concat(contingency.List(ContinuityScope.User)));
        Assert.False(File.Exists(Marker));
        Assert.DoesNotContain(wrong, DrillReportWriter.Render(report, DrillReportFormat.Json));
        Assert.DoesNotContain(wrong, new DrillGateway(gw.Uri, wrong).ToString());
    }

    [Fact]
    public async Task A_gateway_that_does_not_answer_stops_the_drill_before_anything_is_blocked()
    {
        var (engine, _, drill, contingency) = Create();
        using var _ = engine;
        var closed = new Uri($"http://127.0.0.1:{FreePort()}");

        var report = await drill.RunAsync(Options(new DrillGateway(closed, Token), contingency));

        Assert.Equal("NotStarted", report.Outcome);
        Assert.Contains($"The gateway at {closed.GetLeftPart(UriPartial.Authority)} does not answer", report.Steps.Single().Detail);
        Assert.Empty(contingency.List(ContinuityScope.Machine).Concat(contingency.List(ContinuityScope.User)));
        Assert.False(File.Exists(Marker));
    }

    [Theory]
    [InlineData(DrillBlockMethod.Simulated, "http://127.0.0.1:11435", "GatewayNeedsSharedBlock")]
    [InlineData(DrillBlockMethod.Contingency, "http://192.0.2.10:11435", "GatewayNotLocal")]
    [InlineData(DrillBlockMethod.Firewall, "http://gateway.example:11435", "GatewayNotLocal")]
    [InlineData(DrillBlockMethod.Contingency, "localhost:11435", "InvalidGatewayUri")]
    [InlineData(DrillBlockMethod.Contingency, "gateway", "InvalidGatewayUri")]
    public async Task Combinations_that_would_prove_nothing_are_refused_before_anything_runs(DrillBlockMethod method, string uri, string errorId)
    {
        var (engine, _, drill, contingency) = Create();
        using var _ = engine;
        var options = Options(new DrillGateway(new Uri(uri, UriKind.RelativeOrAbsolute), Token), contingency, method);

        var plan = await Assert.ThrowsAsync<ArgumentException>(() => drill.PlanAsync(options, CancellationToken.None));
        var run = await Assert.ThrowsAsync<ArgumentException>(() => drill.RunAsync(options));

        Assert.Equal(errorId, plan.ParamName);
        Assert.Equal(errorId, run.ParamName);
        Assert.Equal(0, Cloud.Hits);
        Assert.False(File.Exists(Marker));
        Assert.Empty(((RecordingCommandRunner)options.Runner).Commands);
    }

    [Fact]
    public async Task A_cancelled_contingency_drill_turns_the_contingency_off_and_leaves_no_marker()
    {
        var (engine, _, drill, contingency) = Create();
        using var _ = engine;
        using var cts = new CancellationTokenSource();
        var options = Options(null, contingency) with { Duration = TimeSpan.FromSeconds(60) };
        bool? onDuring = null;

        var report = await drill.RunAsync(options, new SyncProgress<DrillProgress>(p =>
        {
            if (p.Phase == "Failover" && onDuring is null)
            {
                onDuring = contingency.Evaluate("FailoverDrill", DateTimeOffset.UtcNow) is not null;
                cts.CancelAfter(500);
            }
        }), cts.Token);

        Assert.True(onDuring, "the contingency block was not on during the drill");
        Assert.Equal("Aborted", report.Outcome);
        Assert.Equal("Passed", report.Steps.Single(s => s.Name == "Unblock").Outcome);
        Assert.Null(contingency.Evaluate("FailoverDrill", DateTimeOffset.UtcNow));
        Assert.False(File.Exists(Marker));
        Assert.All(report.Probes.Where(p => p.Phase == "Failover"), p => Assert.Equal("Contingency", p.FailoverReason));
    }

    [Fact]
    public async Task A_contingency_block_left_by_a_dead_drill_is_turned_off_by_the_next_drill_or_Stop_FailoverDrill()
    {
        var contingency = SharedContingency();
        contingency.Enable(ContinuityScope.User, ["FailoverDrill"], "failover drill dead0001", TimeSpan.FromMinutes(30), requireApproval: false);
        contingency.Enable(ContinuityScope.User, ["hr-records"], "the admin's own", null, requireApproval: false);
        new DrillMarker
        {
            DrillId = "dead0001", Method = DrillBlockMethod.Contingency, CloudEndpoint = "https://api.example/v1/chat/completions", BlockedOrigin = "https://api.example",
            Workflow = "FailoverDrill", ContingencyScope = ContinuityScope.User, StartedAt = DateTimeOffset.UtcNow, ProcessId = 999999,
        }.Write(Marker);
        var runner = new RecordingCommandRunner();

        var result = await DrillCleanup.RemoveLeftoverAsync(Marker, runner, null, CancellationToken.None, contingency: contingency);

        Assert.True(result.Found);
        Assert.True(result.Removed, result.Detail);
        Assert.Equal(DrillBlockMethod.Contingency, result.Method);
        Assert.Contains("turned off the drill's contingency for the workflow 'FailoverDrill' (User scope)", result.Detail);
        Assert.Null(contingency.Evaluate("FailoverDrill", DateTimeOffset.UtcNow));
        Assert.NotNull(contingency.Evaluate("hr-records", DateTimeOffset.UtcNow)); // only the drill's own entry
        Assert.False(File.Exists(Marker));
        Assert.Empty(runner.Commands); // no firewall was touched
    }

    [Fact]
    public void The_csv_report_defuses_cells_a_spreadsheet_would_run()
    {
        var report = new DrillReport { CloudEndpoint = "https://api.example" };
        report.Probes.Add(new DrillProbeResult { Probe = "p", Phase = "Failover", Path = DrillPath.Gateway, Error = "=HYPERLINK(\"http://evil\",\"x\")" });

        var csv = DrillReportWriter.Render(report, DrillReportFormat.Csv);

        Assert.Contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"", csv);
        Assert.Equal(DrillReportFormat.Csv, DrillReportWriter.FormatFor("drill.CSV"));
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>The module's gateway as its own process (dotnet OllamaContinuity.Gateway.dll), stopped at dispose.</summary>
    private sealed class GatewayProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringWriterSink _output;

        private GatewayProcess(Process process, Uri uri, StringWriterSink output)
        {
            _process = process;
            Uri = uri;
            _output = output;
        }

        public Uri Uri { get; }

        /// <summary>What the gateway printed (for a failure message).</summary>
        public string Output() => _output.ToString();

        public static string Dll => Path.Combine(RepoRoot(), "out", "OllamaContinuity", "Gateway", GatewayControl.GatewayAssembly);

        public static async Task<GatewayProcess> StartAsync(string dir, string state, FakeAiServer cloud, FakeAiServer ollama, NetNs? inside = null)
        {
            Skip.IfNot(File.Exists(Dll), $"the gateway is not built ({Dll}): build the module in Release first (dotnet build src/OllamaContinuity -c Release)");
            var tokens = Path.Combine(dir, "tokens.json");
            // The first client carries a default workflow: the drill's header must still name the drill's own.
            await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"drill","token":"{{Token}}","workflow":"billing"}]}""");
            // In a network namespace: started through 'ip netns exec', which becomes the gateway (same PID).
            var psi = new ProcessStartInfo(inside is null ? GatewayControl.DotnetHost() : "ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
            var prefix = inside is null ? [] : new[] { "netns", "exec", inside.Name, GatewayControl.DotnetHost() };
            foreach (var a in prefix.Concat([Dll, "--bind", "127.0.0.1", "--port", "0", "--tokens-file", tokens]))
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["OLLAMACONTINUITY_STATE_DIR"] = state;
            psi.Environment["OLLAMACONTINUITY_LOG_PATH"] = Path.Combine(dir, "gateway-requests.jsonl");
            psi.Environment["CLOUD_API_URL"] = cloud.ChatUri.ToString();
            psi.Environment["CLOUD_API_KEY"] = "sk-gateway-drill-test";
            psi.Environment["CLOUD_PROVIDER"] = "OpenAI";
            psi.Environment["OLLAMA_URL"] = ollama.BaseUri.ToString();
            psi.Environment.Remove("AI_CONTINGENCY_MODE");
            var p = Process.Start(psi)!;
            var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
            var g = new StringWriterSink();
            p.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                g.Add(e.Data);
                if (e.Data.StartsWith("LISTENING ", StringComparison.Ordinal)) listening.TrySetResult(new Uri(e.Data["LISTENING ".Length..].Trim()));
            };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) g.Add(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            var done = await Task.WhenAny(listening.Task, p.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
            if (done != listening.Task)
            {
                try { p.Kill(true); } catch (InvalidOperationException) { }
                throw new InvalidOperationException("The gateway did not start: " + g);
            }

            return new GatewayProcess(p, await listening.Task, g);
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (InvalidOperationException)
            {
            }

            _process.Dispose();
        }

        private static string RepoRoot()
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "build.ps1")))
            {
                d = d.Parent;
            }

            return d?.FullName ?? throw new InvalidOperationException("The repository root (build.ps1) is not above " + AppContext.BaseDirectory);
        }

        private sealed class StringWriterSink
        {
            private readonly System.Text.StringBuilder _sb = new();
            public void Add(string line) { lock (_sb) _sb.AppendLine(line); }
            public override string ToString() { lock (_sb) return _sb.ToString(); }
        }
    }
}
