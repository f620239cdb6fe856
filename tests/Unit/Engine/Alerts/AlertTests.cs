using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Http;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Alerts;

public sealed class AlertTests : IAsyncLifetime
{
    private readonly string _dir = TestPaths.New("alert-tests");
    private WebhookListener _hook = null!;
    private FakeAiServer _ollama = null!;
    private readonly HttpClientPool _pool = new();

    public Task InitializeAsync()
    {
        _hook = WebhookListener.Start();
        _ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _hook.DisposeAsync();
        await _ollama.DisposeAsync();
        _pool.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string RecordPath => Path.Combine(_dir, "alert-deliveries.jsonl");

    private AlertDispatcher Dispatcher(AlertSettings? settings, ISystemLog? log = null) =>
        new(TimeProvider.System, () => settings, _pool.CreateClient, log, () => RecordPath);

    private static readonly CircuitOptions QuickCircuit = new() { MinimumThroughput = 2, ProbeInterval = TimeSpan.FromMilliseconds(300) };

    [Fact]
    public async Task An_outage_sends_one_alert_when_it_starts_and_one_when_it_ends_not_one_per_request()
    {
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        var down = true;
        cloud.Script = _ => down ? FaultSpec.Http(503) : FaultSpec.Ok;
        using var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = QuickCircuit });
        var alerts = Dispatcher(new AlertSettings { WebhookUri = _hook.Uri, SystemLog = false });
        ContinuityRuntime.Attach(engine, null, null, alerts);
        var plan = Harness.Plan(Harness.Cloud(cloud), Path.Combine(_dir, "r.jsonl"), Harness.Ollama(_ollama));

        for (var i = 0; i < 12; i++)
        {
            Assert.Equal("Ollama", (await engine.SendAsync(Harness.Request("q" + i), plan)).Backend);
            if (i == 6)
            {
                await Task.Delay(700); // a half-open probe fails: the circuit opens again, same outage
            }
        }

        down = false;
        await Task.Delay(700);
        Assert.Equal("Cloud", (await engine.SendAsync(Harness.Request("back"), plan)).Backend);
        await alerts.FlushAsync(TimeSpan.FromSeconds(5));

        var kinds = _hook.Calls.Select(c => JsonNode.Parse(c.Body)!["kind"]!.GetValue<string>()).ToArray();
        Assert.Equal(["CircuitOpened", "CircuitClosed"], kinds);
        Assert.All(alerts.Deliveries, d => Assert.True(d.Succeeded));
        Assert.Equal(2, File.ReadAllLines(RecordPath).Length);
    }

    [Fact]
    public async Task Processes_sharing_the_state_file_report_one_outage_once()
    {
        var shared = Path.Combine(_dir, "alert-state.json");
        var settings = new AlertSettings { WebhookUri = _hook.Uri, SystemLog = false, RepeatInterval = TimeSpan.FromMinutes(15) };
        // Two dispatchers = two processes (a scheduled task every few minutes is a new process each time).
        var a = new AlertDispatcher(TimeProvider.System, () => settings, _pool.CreateClient, null, () => null, () => shared);
        var b = new AlertDispatcher(TimeProvider.System, () => settings, _pool.CreateClient, null, () => null, () => shared);
        var t0 = DateTimeOffset.UtcNow;
        const string ep = "https://api.openai.com/v1/chat/completions";
        async Task Send(AlertDispatcher d, ContinuityEventKind kind, TimeSpan after)
        {
            d.OnEvent(new ContinuityEvent(kind, t0 + after, ep, "ServerError"));
            await d.FlushAsync(TimeSpan.FromSeconds(5));
        }

        await Send(a, ContinuityEventKind.CircuitOpened, TimeSpan.Zero);          // sent
        await Send(b, ContinuityEventKind.CircuitOpened, TimeSpan.FromMinutes(5)); // same outage, other process: not sent
        await Send(a, ContinuityEventKind.CircuitClosed, TimeSpan.FromMinutes(9)); // recovered: sent
        await Send(b, ContinuityEventKind.CircuitClosed, TimeSpan.FromMinutes(9)); // already reported: not sent
        await Send(b, ContinuityEventKind.CircuitOpened, TimeSpan.FromMinutes(30)); // a new outage: sent
        var c = new AlertDispatcher(TimeProvider.System, () => settings, _pool.CreateClient, null, () => null, () => shared);
        await Send(c, ContinuityEventKind.CircuitOpened, TimeSpan.FromMinutes(50)); // b never saw its end; 20 min later it is stale: sent

        Assert.True(await _hook.WaitForAsync(4, TimeSpan.FromSeconds(5)));
        await Task.Delay(200);
        Assert.Equal(["CircuitOpened", "CircuitClosed", "CircuitOpened", "CircuitOpened"],
            _hook.Calls.Select(call => JsonNode.Parse(call.Body)!["kind"]!.GetValue<string>()));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(shared));
        }
    }

    [Theory]
    [InlineData(AlertFormat.Generic)]
    [InlineData(AlertFormat.Teams)]
    [InlineData(AlertFormat.Slack)]
    public async Task Payload_shapes_match_each_webhook_kind(AlertFormat format)
    {
        var alerts = Dispatcher(new AlertSettings { WebhookUri = _hook.Uri, Format = format, SystemLog = false });
        alerts.OnEvent(new ContinuityEvent(ContinuityEventKind.CircuitOpened, DateTimeOffset.UtcNow, "https://api.openai.com/v1/chat/completions", "ServerError", DateTimeOffset.UtcNow.AddSeconds(30)));
        await alerts.FlushAsync(TimeSpan.FromSeconds(5));

        var call = Assert.Single(_hook.Calls);
        Assert.StartsWith("application/json", call.ContentType);
        Assert.Equal(WebhookListener.SecretPath, call.Path);
        var json = JsonNode.Parse(call.Body)!;
        switch (format)
        {
            case AlertFormat.Generic:
                Assert.Equal("CircuitOpened", json["kind"]!.GetValue<string>());
                Assert.Equal("warning", json["severity"]!.GetValue<string>());
                Assert.Equal("https://api.openai.com/v1/chat/completions", json["endpoint"]!.GetValue<string>());
                break;
            case AlertFormat.Teams:
                Assert.Equal("message", json["type"]!.GetValue<string>());
                var card = json["attachments"]![0]!;
                Assert.Equal("application/vnd.microsoft.card.adaptive", card["contentType"]!.GetValue<string>());
                Assert.Equal("AdaptiveCard", card["content"]!["type"]!.GetValue<string>());
                Assert.Contains("Cloud AI unavailable", card["content"]!["body"]![0]!["text"]!.GetValue<string>());
                break;
            case AlertFormat.Slack:
                Assert.Contains("Cloud AI unavailable", json["text"]!.GetValue<string>());
                Assert.Equal("header", json["blocks"]![0]!["type"]!.GetValue<string>());
                Assert.Equal("section", json["blocks"]![1]!["type"]!.GetValue<string>());
                break;
        }
    }

    [Theory]
    [InlineData(500)]
    [InlineData(0)]
    public async Task A_failing_webhook_never_breaks_a_request_and_is_recorded_without_the_secret(int status)
    {
        var target = _hook.Uri;
        if (status == 0)
        {
            target = new Uri(FakeAiServer.RefusedUri(WebhookListener.SecretPath).ToString());
        }
        else
        {
            _hook.Status = status;
        }

        using var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = QuickCircuit });
        var alerts = Dispatcher(new AlertSettings { WebhookUri = target, SystemLog = false });
        ContinuityRuntime.Attach(engine, null, null, alerts);
        var plan = Harness.Plan(Harness.Cloud(FakeAiServer.RefusedUri()), Path.Combine(_dir, "r.jsonl"), Harness.Ollama(_ollama));

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("Ollama", (await engine.SendAsync(Harness.Request("q"), plan)).Backend);
        }

        await alerts.FlushAsync(TimeSpan.FromSeconds(5));
        var d = Assert.Single(alerts.Deliveries);
        Assert.False(d.Succeeded);
        Assert.NotNull(d.Error);
        Assert.Equal($"http://{target.Host}/***", d.Target);
        var everything = d.Error + d.Target + File.ReadAllText(RecordPath);
        Assert.DoesNotContain("SECRET", everything);
        Assert.DoesNotContain("CANARY", everything);
    }

    [Fact]
    public void All_backends_failed_is_sent_at_most_once_per_repeat_interval()
    {
        var alerts = Dispatcher(new AlertSettings { WebhookUri = _hook.Uri, RepeatInterval = TimeSpan.FromMinutes(10) });
        var t0 = DateTimeOffset.UtcNow;
        ContinuityEvent At(TimeSpan after) => new(ContinuityEventKind.AllBackendsFailed, t0 + after, null, "x");

        Assert.True(alerts.ShouldSend(At(TimeSpan.Zero)));
        Assert.False(alerts.ShouldSend(At(TimeSpan.FromMinutes(1))));
        Assert.False(alerts.ShouldSend(At(TimeSpan.FromMinutes(9))));
        Assert.True(alerts.ShouldSend(At(TimeSpan.FromMinutes(10))));
        Assert.False(alerts.ShouldSend(new(ContinuityEventKind.CircuitHalfOpened, t0, "e", null)));
        Assert.False(alerts.ShouldSend(new(ContinuityEventKind.CircuitClosed, t0, "e", null))); // no outage to end
    }

    [SkippableFact]
    public async Task The_system_log_gets_an_rfc3164_line_on_the_syslog_socket()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the syslog socket is Linux");
        var path = Path.Combine(_dir, "log.sock");
        using var server = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        server.Bind(new UnixDomainSocketEndPoint(path));
        var alerts = Dispatcher(new AlertSettings { SystemLog = true }, new SystemLog(socketPath: path));

        alerts.OnEvent(new ContinuityEvent(ContinuityEventKind.CircuitOpened, DateTimeOffset.UtcNow, "https://api.anthropic.com/v1/messages", "Overloaded"));
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var n = await server.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        await alerts.FlushAsync(TimeSpan.FromSeconds(5));

        var line = Encoding.UTF8.GetString(buffer, 0, n);
        Assert.Matches(@"^<12>OllamaContinuity\[\d+\]: Cloud AI unavailable: failing over to Ollama; endpoint https://api.anthropic.com/v1/messages; reason: Overloaded", line);
        var d = Assert.Single(alerts.Deliveries);
        Assert.Equal("SystemLog", d.Channel);
        Assert.True(d.Succeeded);
    }

    [SkippableFact]
    public async Task Without_the_syslog_socket_the_line_goes_through_logger_with_an_argument_list()
    {
        Skip.If(OperatingSystem.IsWindows(), "Windows writes to the event log with eventcreate");
        var runner = new OllamaContinuity.Native.RecordingCommandRunner();
        var log = new SystemLog(runner, socketPath: Path.Combine(_dir, "no-such-socket"));

        Assert.Null(await log.WriteAsync("critical", "AI unavailable; host h1", default));

        var c = Assert.Single(runner.Commands);
        Assert.Equal("logger", c.FileName);
        Assert.Equal(["-t", "OllamaContinuity", "-p", "user.crit", "--", "AI unavailable; host h1"], c.Arguments);
    }

    [Fact]
    public void Settings_are_stored_owner_only_the_environment_wins_and_the_url_is_never_displayed()
    {
        var store = new AlertSettingsStore(scope => Path.Combine(_dir, scope.ToString(), "alerts.json"));
        Assert.Null(store.Get(ContinuityScope.User));
        Assert.True(store.Set(ContinuityScope.User, new AlertSettings { WebhookUri = _hook.Uri, Format = AlertFormat.Teams }));
        Assert.False(store.Set(ContinuityScope.User, new AlertSettings { WebhookUri = _hook.Uri, Format = AlertFormat.Teams }));

        var s = store.Get(ContinuityScope.User)!;
        Assert.Equal(_hook.Uri, s.WebhookUri);
        Assert.Equal(AlertFormat.Teams, s.Format);
        Assert.Equal("http://127.0.0.1/***", s.Display);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "User", "alerts.json")));
        }

        store.Set(ContinuityScope.Process, new AlertSettings { Format = AlertFormat.Slack, SystemLog = true });
        Assert.Equal("Process", store.Effective()!.Source);
        store.Set(ContinuityScope.Process, null);
        Assert.Equal("User", store.Effective()!.Source);
        store.Set(ContinuityScope.User, null);
        Assert.Null(store.Get(ContinuityScope.User));
    }
}

/// <summary>Issue 9, item 3: damaged alert settings are loud, never "nothing configured".</summary>
public sealed class AlertSettingsDamageTests : IAsyncLifetime
{
    private readonly string _dir = TestPaths.New("alert-damage");
    private FakeAiServer _ollama = null!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "User"));
        Directory.CreateDirectory(Path.Combine(_dir, "Machine"));
        _ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _ollama.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string PathOf(ContinuityScope scope) => Path.Combine(_dir, scope.ToString(), "alerts.json");

    public static TheoryData<string, string?> Damage() => new()
    {
        { "{\"webhookUri\":\"https://hooks.example.com/T0/B0/sec", null },
        { "not json", null },
        { "[]", null },
        { "{\"webhookUri\":42}", "webhookUri" },
        { "{\"webhookUri\":\"ftp://hooks.example.com/secret-path\"}", "webhookUri" },
        { "{\"format\":\"Discord\"}", "format" },
        { "{\"systemLog\":\"yes\"}", "systemLog" },
        { "{\"repeatInterval\":\"soon\"}", "repeatInterval" },
        { "{\"WebhookUri\":\"https://hooks.example.com/x\"}", "WebhookUri" },
        { " \n ", null },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void A_damaged_file_is_an_error_naming_the_file_and_field_and_never_shows_the_url(string content, string? field)
    {
        var store = new AlertSettingsStore(PathOf);
        File.WriteAllText(PathOf(ContinuityScope.User), content);

        var e = Assert.Throws<AlertSettingsException>(() => store.Get(ContinuityScope.User));
        Assert.Equal(field, e.Field);
        Assert.Contains(PathOf(ContinuityScope.User), e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-p", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hooks.example.com", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("T0/B0", e.Message, StringComparison.Ordinal);

        var r = store.Resolve();
        var p = Assert.Single(r.Problems);
        Assert.True(p.Damaged);
        Assert.Equal(PathOf(ContinuityScope.User), p.Path);
        Assert.Throws<InvalidDataException>(() => store.EffectiveOrThrow());

        // Set refuses to replace it (the error says so); -Clear removes it.
        Assert.Throws<AlertSettingsException>(() => store.Set(ContinuityScope.User, new AlertSettings { SystemLog = true }));
        Assert.Equal(content, File.ReadAllText(PathOf(ContinuityScope.User)));
        Assert.True(store.Set(ContinuityScope.User, null));
        Assert.Empty(store.Resolve().Problems);
    }

    [Fact]
    public void A_byte_order_mark_is_read_through()
    {
        var store = new AlertSettingsStore(PathOf);
        File.WriteAllBytes(PathOf(ContinuityScope.User), [.. Encoding.UTF8.GetPreamble(), .. "{\"format\":\"Slack\",\"systemLog\":false}"u8.ToArray()]);

        Assert.Equal(AlertFormat.Slack, store.Get(ContinuityScope.User)!.Format);
    }

    [Fact]
    public async Task A_request_that_raises_an_alert_warns_that_the_settings_are_damaged_and_the_record_says_why()
    {
        var store = new AlertSettingsStore(PathOf);
        File.WriteAllText(PathOf(ContinuityScope.User), "{\"webhookUri\":null,");
        using var engine = new FailoverEngine();
        var record = Path.Combine(_dir, "deliveries.jsonl");
        var alerts = new AlertDispatcher(TimeProvider.System, store.Resolve, engine.HttpPool.CreateClient, null, () => record);
        ContinuityRuntime.Attach(engine, null, null, alerts);
        var plan = Harness.Plan(Harness.Cloud(FakeAiServer.RefusedUri()), Path.Combine(_dir, "r.jsonl"), BackendEndpoint.Ollama(FakeAiServer.RefusedUri("/").ToString(), "m", Harness.Fast));

        for (var i = 0; i < 2; i++)
        {
            var observer = new RecordingObserver();
            await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q"), plan, observer));
            Assert.Contains(observer.Warnings, w => w.Contains(PathOf(ContinuityScope.User), StringComparison.Ordinal) && w.Contains("may reach nobody", StringComparison.Ordinal));
        }

        await alerts.FlushAsync(TimeSpan.FromSeconds(5));
        var d = Assert.Single(AlertDispatcher.ReadRecord(record));
        Assert.Equal("Settings", d.Channel);
        Assert.False(d.Succeeded);
        Assert.Contains("damaged", d.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_line_in_the_delivery_record_is_skipped_and_reported()
    {
        var record = Path.Combine(_dir, "deliveries.jsonl");
        await File.WriteAllTextAsync(record, "{\"timestamp\":\"2026-12-01T10:00:00Z\",\"kind\":\"CircuitOpened\",\"channel\":\"Webhook\",\"succeeded\":true}\n{\"kind\":\"Nope\"}\n");
        var problems = new List<OllamaContinuity.Internal.JsonLineProblem>();

        Assert.Single(AlertDispatcher.ReadRecord(record, onProblem: problems.Add));
        Assert.Equal(2, Assert.Single(problems).LineNumber);
    }
}

/// <summary>Issue 9, item 3: the drill's alert step fails with the reason when the alert settings are damaged.</summary>
public sealed class DrillAlertSettingsTests : StandInBackendsTest
{
    private readonly string _dir = TestPaths.New("drill-alert-damage");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Directory.CreateDirectory(Path.Combine(_dir, "User"));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [Fact]
    public async Task The_alert_step_fails_and_names_the_damaged_file()
    {
        var file = Path.Combine(_dir, "User", "alerts.json");
        File.WriteAllText(file, "{\"webhookUri\":");
        var store = new AlertSettingsStore(scope => Path.Combine(_dir, scope.ToString(), "alerts.json"));
        using var engine = new FailoverEngine(new FailoverEngineOptions { Circuit = OllamaContinuity.Tests.Drill.DrillTests.QuickCircuit });
        var alerts = new AlertDispatcher(TimeProvider.System, store.Resolve, engine.HttpPool.CreateClient, null, () => Path.Combine(_dir, "d.jsonl"));
        ContinuityRuntime.Attach(engine, null, null, alerts);
        var drill = new OllamaContinuity.Drill.FailoverDrill(engine, alerts, store.EffectiveOrThrow);

        var report = await drill.RunAsync(new OllamaContinuity.Drill.DrillOptions
        {
            Plan = Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama)),
            Duration = TimeSpan.FromSeconds(1.2),
            Interval = TimeSpan.FromMilliseconds(300),
            RecoveryTimeout = TimeSpan.FromSeconds(15),
            AlertTimeout = TimeSpan.FromSeconds(2),
            MarkerPath = Path.Combine(_dir, "drill-block.json"),
            Runner = new OllamaContinuity.Native.RecordingCommandRunner(),
        });

        var step = report.Steps.Single(s => s.Name == "Alert");
        Assert.Equal("Failed", step.Outcome);
        Assert.Contains(file, step.Detail, StringComparison.Ordinal);
        Assert.Contains("damaged", step.Detail, StringComparison.Ordinal);
    }
}
