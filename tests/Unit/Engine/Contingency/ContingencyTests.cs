using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Contingency;

public sealed class ContingencyTests : StandInBackendsTest
{
    private readonly string _dir = TestPaths.New("contingency-tests");

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string PathOf(ContinuityScope scope) => Path.Combine(_dir, scope.ToString(), "contingency.json");

    private string LogPath => Path.Combine(_dir, "contingency-log.jsonl");

    private (FailoverEngine Engine, ContingencyService Service) Create(TimeProvider? time = null, CircuitOptions? circuit = null)
    {
        var service = new ContingencyService(time, PathOf);
        var engine = new FailoverEngine(new FailoverEngineOptions { TimeProvider = time ?? TimeProvider.System, Circuit = circuit ?? new() });
        ContinuityRuntime.Attach(engine, service, () => LogPath, null);
        return (engine, service);
    }

    private BackendPlan Plan() => Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama));

    [Fact]
    public async Task Enabled_for_all_workflows_the_cloud_is_never_contacted()
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.Enable(ContinuityScope.User, null, "known OpenAI outage", null, false);

        for (var i = 0; i < 3; i++)
        {
            var r = await engine.SendAsync(Harness.Request("q" + i, workflow: i == 0 ? null : "wf" + i), Plan());
            Assert.Equal("Ollama", r.Backend);
            Assert.Equal("Contingency", r.FailoverReason);
            Assert.True(r.Contingency);
            Assert.Equal("User", r.ContingencySource);
        }

        Assert.Equal(0, Cloud.Hits);
        Assert.Equal(3, Ollama.Hits);
    }

    [Fact]
    public async Task Per_workflow_contingency_keeps_other_workflows_on_the_cloud()
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.Enable(ContinuityScope.User, ["hr-*", "legal"], "data must stay on premises", null, false);

        var hr = await engine.SendAsync(Harness.Request("payroll", workflow: "HR-Payroll"), Plan());
        var legal = await engine.SendAsync(Harness.Request("contract", workflow: "legal"), Plan());
        var marketing = await engine.SendAsync(Harness.Request("slogan", workflow: "marketing"), Plan());
        var none = await engine.SendAsync(Harness.Request("no workflow"), Plan());

        Assert.Equal("Ollama", hr.Backend);
        Assert.Equal("Ollama", legal.Backend);
        Assert.Equal("Cloud", marketing.Backend);
        Assert.Equal("Cloud", none.Backend);
        Assert.Equal(2, Cloud.Hits);
        Assert.DoesNotContain(Cloud.Requests, r => r.Body.Contains("payroll") || r.Body.Contains("contract"));
    }

    [Fact]
    public async Task Duration_expires_by_itself_on_the_controlled_clock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 1, 8, 0, 0, TimeSpan.Zero));
        var (engine, service) = Create(time);
        using var _ = engine;
        var s = Assert.Single(service.Enable(ContinuityScope.User, ["batch"], null, TimeSpan.FromHours(2), false));
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromHours(2), s.Until);

        time.Advance(TimeSpan.FromMinutes(119));
        Assert.NotNull(engine.EvaluateContingency("batch"));
        Assert.Single(service.List(ContinuityScope.User));

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(engine.EvaluateContingency("batch"));
        Assert.Empty(service.List(ContinuityScope.User));
        var r = await engine.SendAsync(Harness.Request("after expiry", workflow: "batch"), Plan());
        Assert.Equal("Cloud", r.Backend);
    }

    [Fact]
    public void State_is_persisted_for_other_sessions_and_processes_and_scopes_are_separate()
    {
        var (_, first) = Create();
        first.Enable(ContinuityScope.User, ["reports"], "drill", null, true);
        first.Enable(ContinuityScope.Process, ["only-here"], null, null, false);

        var second = new ContingencyService(null, PathOf); // another session: same files, its own memory
        var d = second.Evaluate("reports", DateTimeOffset.UtcNow);
        Assert.NotNull(d);
        Assert.Equal("User", d!.Source);
        Assert.True(d.RequireApproval);
        Assert.Null(second.Evaluate("only-here", DateTimeOffset.UtcNow));
        Assert.NotNull(first.Evaluate("only-here", DateTimeOffset.UtcNow));

        using var doc = JsonDocument.Parse(File.ReadAllBytes(PathOf(ContinuityScope.User)));
        Assert.Equal("reports", doc.RootElement.GetProperty("entries")[0].GetProperty("workflow").GetString());
    }

    [Fact]
    public void Enable_and_disable_are_idempotent()
    {
        var (_, service) = Create();
        Assert.True(Assert.Single(service.Enable(ContinuityScope.User, ["a"], "r", null, false)).Changed);
        Assert.False(Assert.Single(service.Enable(ContinuityScope.User, ["a"], "r", null, false)).Changed);
        Assert.True(Assert.Single(service.Disable(ContinuityScope.User, ["a"])).Changed);
        Assert.False(Assert.Single(service.Disable(ContinuityScope.User, ["a"])).Changed);
        Assert.Empty(service.Disable(ContinuityScope.User, null));
    }

    [Fact]
    public void Disable_without_workflows_turns_off_every_manual_contingency_of_that_scope_only()
    {
        var (_, service) = Create();
        service.Enable(ContinuityScope.User, ["a", "b"], null, null, false);
        service.Enable(ContinuityScope.User, null, null, null, false);
        service.Enable(ContinuityScope.Process, ["c"], null, null, false);

        var off = service.Disable(ContinuityScope.User, null);

        Assert.Equal(["*", "a", "b"], off.Select(o => o.Workflow).Order());
        Assert.Empty(service.List(ContinuityScope.User));
        Assert.Single(service.List(ContinuityScope.Process));
    }

    [Fact]
    public void Star_is_the_entry_for_every_workflow_and_disabling_it_keeps_named_entries()
    {
        var (_, service) = Create();
        service.Enable(ContinuityScope.User, ["*"], null, null, false);
        service.Enable(ContinuityScope.User, ["a"], null, null, false);
        Assert.NotNull(service.Evaluate(null, DateTimeOffset.UtcNow));
        Assert.Equal("*", service.List(ContinuityScope.User).First(e => e.Workflow != "a").Workflow);

        var off = Assert.Single(service.Disable(ContinuityScope.User, ["*"]));

        Assert.Equal("*", off.Workflow);
        Assert.Null(service.Evaluate(null, DateTimeOffset.UtcNow));
        Assert.Equal("a", Assert.Single(service.List(ContinuityScope.User)).Workflow);
    }

    [SkippableFact]
    public void Files_are_owner_only_for_user_scope_and_world_readable_for_machine_scope()
    {
        Skip.If(OperatingSystem.IsWindows(), "Unix permissions");
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var (_, service) = Create();
        service.Enable(ContinuityScope.User, ["a"], null, null, false);
        service.Enable(ContinuityScope.Machine, ["b"], null, null, false);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf(ContinuityScope.User)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(PathOf(ContinuityScope.Machine)));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(PathOf(ContinuityScope.User))!, "*.tmp"));
    }

    [Fact]
    public async Task Concurrent_enable_and_disable_from_several_processes_leave_a_valid_complete_state_file()
    {
        const int processes = 6, changes = 16;
        var dir = Path.GetDirectoryName(PathOf(ContinuityScope.User))!;
        Directory.CreateDirectory(dir);
        var helper = typeof(Program).Assembly.Location;
        var children = Enumerable.Range(0, processes).Select(i =>
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { helper, "contingency-writer", dir, i.ToString(), changes.ToString() })
            {
                psi.ArgumentList.Add(a);
            }

            return Process.Start(psi)!;
        }).ToArray();
        foreach (var c in children)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await c.WaitForExitAsync(cts.Token);
            Assert.True(c.ExitCode == 0, await c.StandardError.ReadToEndAsync());
            c.Dispose();
        }

        // Every process enabled w-i-0..15 and disabled the odd ones: no update may be lost.
        var state = JsonDocument.Parse(File.ReadAllBytes(PathOf(ContinuityScope.User)));
        var workflows = state.RootElement.GetProperty("entries").EnumerateArray().Select(e => e.GetProperty("workflow").GetString()).Order().ToArray();
        var expected = Enumerable.Range(0, processes).SelectMany(i => Enumerable.Range(0, changes).Where(j => j % 2 == 0).Select(j => $"w-{i}-{j}")).Order().ToArray();
        Assert.Equal(expected, workflows);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public async Task The_contingency_log_holds_prompt_and_output_and_is_owner_only()
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.Enable(ContinuityScope.User, ["secret-wf"], null, null, false);

        var served = await engine.SendAsync(new AiRequest { Messages = [new ChatMessage("user", "summarise the merger memo")], SystemPrompt = "be brief", Workflow = "secret-wf" }, Plan());
        await engine.SendAsync(Harness.Request("public question", workflow: "public"), Plan()); // cloud: not logged

        var entry = Assert.Single(ContingencyLog.Read(LogPath));
        Assert.Equal("summarise the merger memo", entry.Prompt);
        Assert.Equal("be brief", entry.SystemPrompt);
        Assert.Equal(served.Text, entry.Output);
        Assert.Equal("secret-wf", entry.Workflow);
        Assert.Equal("User", entry.ContingencySource);
        Assert.Equal(served.RequestId, entry.RequestId);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(LogPath));
        }

        Assert.Empty(ContingencyLog.Read(LogPath, workflows: ["other"]));
        Assert.Empty(ContingencyLog.Read(LogPath, since: DateTimeOffset.UtcNow.AddMinutes(1)));
        Assert.Single(ContingencyLog.Read(LogPath, since: DateTimeOffset.UtcNow.AddMinutes(-1), workflows: ["SECRET-*"]));
    }

    [Fact]
    public async Task Automatic_contingency_from_an_open_circuit_is_logged_too()
    {
        var (engine, _) = Create(circuit: new CircuitOptions { MinimumThroughput = 2, ProbeInterval = TimeSpan.FromMinutes(5) });
        using var __ = engine;
        var plan = Harness.Plan(Harness.Cloud(FakeAiServer.RefusedUri()), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama));
        for (var i = 0; i < 3; i++)
        {
            await engine.SendAsync(Harness.Request("during outage " + i), plan);
        }

        Assert.Contains(engine.GetCircuits(), c => c.State == "Open");
        var entries = ContingencyLog.Read(LogPath).ToArray();
        Assert.NotEmpty(entries);
        Assert.All(entries, e => Assert.Equal("Automatic", e.ContingencySource));
        Assert.Equal("during outage 2", entries[^1].Prompt);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RequireApproval_asks_before_serving_locally_and_a_refusal_fails_clearly(bool approve)
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.Enable(ContinuityScope.User, ["finance"], "compliance", null, requireApproval: true);
        var observer = new RecordingObserver { Approve = approve };

        if (approve)
        {
            var r = await engine.SendAsync(Harness.Request("q", workflow: "finance"), Plan(), observer);
            Assert.Equal("Ollama", r.Backend);
        }
        else
        {
            var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q", workflow: "finance"), Plan(), observer));
            Assert.Equal(AiRequestFailure.FailoverNotApproved, e.Failure);
            Assert.Contains("Contingency is on (User)", e.Message);
            Assert.Equal(0, Ollama.Hits);
        }

        Assert.Equal(1, observer.ApprovalsAsked);
        Assert.Equal(0, Cloud.Hits);
    }

    [Fact]
    public void Enable_and_disable_raise_events_for_the_alerts()
    {
        var (engine, service) = Create();
        using var _ = engine;
        var events = new List<ContinuityEvent>();
        engine.StateChanged += events.Add;

        service.Enable(ContinuityScope.User, ["a"], "why", TimeSpan.FromHours(1), false);
        service.Enable(ContinuityScope.User, ["a"], "why", TimeSpan.FromHours(1), false); // until moves: a change
        service.Disable(ContinuityScope.User, ["a"]);
        service.Disable(ContinuityScope.User, ["a"]); // nothing to do: no event

        Assert.Equal([ContinuityEventKind.ContingencyEnabled, ContinuityEventKind.ContingencyEnabled, ContinuityEventKind.ContingencyDisabled], events.Select(e => e.Kind));
        Assert.Equal("a", events[0].Workflow);
    }

    [Fact]
    public void A_damaged_state_file_is_reported_and_never_overwritten()
    {
        var (_, service) = Create();
        Directory.CreateDirectory(Path.GetDirectoryName(PathOf(ContinuityScope.User))!);
        File.WriteAllText(PathOf(ContinuityScope.User), "{ not json");

        Assert.NotNull(service.Evaluate("x", DateTimeOffset.UtcNow)!.Unreadable);
        Assert.NotNull(service.Read(ContinuityScope.User).Problem);
        Assert.Throws<ContingencyStateException>(() => service.Enable(ContinuityScope.User, ["x"], null, null, false));
        Assert.Equal("{ not json", File.ReadAllText(PathOf(ContinuityScope.User)));
    }
}
