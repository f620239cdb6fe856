using System.Diagnostics;
using System.Text;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Contingency;

/// <summary>Issue 9, items 1, 2 and 4: a contingency state that cannot be read fails closed, bounded, and says which file and field.</summary>
public sealed class StateDamageTests : StandInBackendsTest
{
    private readonly string _dir = TestPaths.New("state-damage");

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Directory.CreateDirectory(Path.Combine(_dir, "User"));
        Directory.CreateDirectory(Path.Combine(_dir, "Machine"));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    private string PathOf(ContinuityScope scope) => Path.Combine(_dir, scope.ToString(), "contingency.json");

    private (FailoverEngine Engine, ContingencyService Service) Create(Func<ContinuityScope, string>? pathOf = null)
    {
        var service = new ContingencyService(null, pathOf ?? PathOf) { UnreadableStatePolicy = "Fail" };
        var engine = new FailoverEngine();
        ContinuityRuntime.Attach(engine, service, null, null);
        return (engine, service);
    }

    private BackendPlan Plan() => Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama));

    private const string Since = "\"since\":\"2026-12-01T10:00:00+00:00\"";

    /// <summary>Kinds of damage, with the field the error must name (null: the whole file).</summary>
    public static TheoryData<string, string, string?> Damage() => new()
    {
        { "truncated", "{\"version\":1,\"entries\":[{\"workflow\":\"hr-*\",\"since\":\"2026-", null },
        { "garbage", "\u0001\u00ff not json at all", null },
        { "nul bytes", "\0\0\0\0", null },
        { "empty", "", null },
        { "white space", " \n\t ", null },
        { "root null", "null", null },
        { "root array", "[]", null },
        { "root string", "\"entries\"", null },
        { "entries null", "{\"version\":1,\"entries\":null}", "entries" },
        { "entries object", "{\"version\":1,\"entries\":{}}", "entries" },
        { "entries missing", "{\"version\":1}", "entries" },
        { "version missing", "{\"entries\":[]}", "version" },
        { "version 2", "{\"version\":2,\"entries\":[]}", "version" },
        { "version string", "{\"version\":\"1\",\"entries\":[]}", "version" },
        { "entry null", "{\"version\":1,\"entries\":[null]}", "entries[0]" },
        { "entry number", "{\"version\":1,\"entries\":[7]}", "entries[0]" },
        { "workflow number", "{\"version\":1,\"entries\":[{\"workflow\":42," + Since + "}]}", "entries[0].workflow" },
        { "workflow empty", "{\"version\":1,\"entries\":[{\"workflow\":\"\"," + Since + "}]}", "entries[0].workflow" },
        { "since missing", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\"}]}", "entries[0].since" },
        { "since null", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\",\"since\":null}]}", "entries[0].since" },
        { "until not a date", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\"," + Since + ",\"until\":\"soon\"}]}", "entries[0].until" },
        { "requireApproval string", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\"," + Since + ",\"requireApproval\":\"yes\"}]}", "entries[0].requireApproval" },
        { "reason object", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\"," + Since + ",\"reason\":{}}]}", "entries[0].reason" },
        { "field misspelt", "{\"version\":1,\"entries\":[{\"workflow\":\"hr\"," + Since + ",\"Until\":\"2030-01-01T00:00:00Z\"}]}", "entries[0].Until" },
        { "field twice", "{\"version\":1,\"entries\":[],\"entries\":[]}", "entries" },
        { "root field unknown", "{\"version\":1,\"Entries\":[]}", "Entries" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public async Task A_damaged_state_file_fails_every_request_closed_and_names_the_file_and_field(string kind, string content, string? field)
    {
        var (engine, service) = Create();
        using var _ = engine;
        File.WriteAllBytes(PathOf(ContinuityScope.User), Encoding.UTF8.GetBytes(content));

        foreach (var workflow in new[] { "hr-payroll", "anything", null })
        {
            var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q", workflow: workflow), Plan()));
            Assert.Equal(AiRequestFailure.ContingencyStateUnreadable, e.Failure);
            Assert.Contains(PathOf(ContinuityScope.User), e.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, Cloud.Hits);
        Assert.Equal(0, Ollama.Hits);
        var problem = Assert.IsType<ContingencyStateException>(service.Read(ContinuityScope.User).Problem);
        Assert.Equal(field, problem.Field);
        Assert.Equal(PathOf(ContinuityScope.User), problem.Path);
        if (field is not null)
        {
            Assert.Contains(field, problem.Message, StringComparison.Ordinal);
        }

        // Every reader says so: never a NullReferenceException, never "no contingency".
        Assert.Throws<ContingencyStateException>(() => service.List(ContinuityScope.User));
        Assert.Throws<ContingencyStateException>(() => service.Enable(ContinuityScope.User, ["x"], null, null, false));
        Assert.Throws<ContingencyStateException>(() => service.Disable(ContinuityScope.User, null));
        Assert.Equal(content, Encoding.UTF8.GetString(File.ReadAllBytes(PathOf(ContinuityScope.User))));
        Assert.NotEmpty(kind);
    }

    [Theory]
    [InlineData("utf-8")]
    [InlineData("utf-16le")]
    [InlineData("utf-16be")]
    public async Task A_byte_order_mark_is_read_through_and_the_contingency_holds(string encoding)
    {
        var (engine, _) = Create();
        using var __ = engine;
        var json = "{\"version\":1,\"entries\":[{" + Since + ",\"reason\":\"hand-edited\"}]}";
        var bytes = encoding switch
        {
            "utf-8" => [.. Encoding.UTF8.GetPreamble(), .. Encoding.UTF8.GetBytes(json)],
            "utf-16le" => [.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes(json)],
            _ => (byte[])[.. Encoding.BigEndianUnicode.GetPreamble(), .. Encoding.BigEndianUnicode.GetBytes(json)],
        };
        File.WriteAllBytes(PathOf(ContinuityScope.User), bytes);

        var r = await engine.SendAsync(Harness.Request("q", workflow: "any"), Plan());

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("User", r.ContingencySource);
        Assert.Equal(0, Cloud.Hits);
    }

    [Fact]
    public async Task By_the_explicit_setting_an_unreadable_state_serves_from_Ollama_with_a_warning()
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.UnreadableStatePolicy = "Ollama";
        File.WriteAllText(PathOf(ContinuityScope.User), "{\"version\":1,\"entries\":null}");
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Harness.Request("q", workflow: "sales"), Plan(), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.True(r.Contingency);
        Assert.Equal(0, Cloud.Hits);
        var warning = Assert.Single(observer.Warnings);
        Assert.Contains(PathOf(ContinuityScope.User), warning, StringComparison.Ordinal);
        Assert.Contains(ContingencyService.UnreadableStateVariable + "=Ollama", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_last_good_copy_serves_what_it_covers_from_Ollama_and_the_rest_still_fails_closed()
    {
        var (engine, service) = Create();
        using var _ = engine;
        service.Enable(ContinuityScope.User, ["hr-*"], "payroll data", null, false);
        var lastGood = ContingencyService.LastGoodPath(PathOf(ContinuityScope.User));
        Assert.True(File.Exists(lastGood));
        File.WriteAllText(PathOf(ContinuityScope.User), "{\"version\":1,\"entries\":[{\"workflow\":\"hr-*\",");
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Harness.Request("q", workflow: "hr-payroll"), Plan(), observer);
        Assert.Equal("Ollama", r.Backend);
        Assert.Equal("User", r.ContingencySource);
        Assert.Contains(observer.Warnings, w => w.Contains(lastGood, StringComparison.Ordinal));

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q", workflow: "sales"), Plan()));
        Assert.Equal(AiRequestFailure.ContingencyStateUnreadable, e.Failure);
        Assert.Contains(lastGood, e.Message, StringComparison.Ordinal);
        Assert.Equal(0, Cloud.Hits);
        Assert.Equal("hr-*", Assert.Single(service.Read(ContinuityScope.User).LastGood!.Entries).Workflow);
    }

    [Fact]
    public async Task A_readable_scope_that_covers_the_workflow_still_serves_it_from_Ollama_with_a_warning()
    {
        var (engine, service) = Create();
        using var _ = engine;
        File.WriteAllText(PathOf(ContinuityScope.Machine), "garbage");
        service.Enable(ContinuityScope.User, null, "all local", null, false);
        var observer = new RecordingObserver();

        var r = await engine.SendAsync(Harness.Request("q", workflow: "x"), Plan(), observer);

        Assert.Equal("Ollama", r.Backend);
        Assert.Contains(observer.Warnings, w => w.Contains(PathOf(ContinuityScope.Machine), StringComparison.Ordinal));
    }

    [Fact]
    public void A_valid_hand_edit_becomes_the_last_good_copy_when_it_is_read()
    {
        var (_, service) = Create();
        File.WriteAllText(PathOf(ContinuityScope.User), "{\"version\":1,\"entries\":[{\"workflow\":\"legal\"," + Since + "}]}");

        Assert.Equal("legal", Assert.Single(service.Read(ContinuityScope.User).Entries).Workflow);
        Assert.Equal(File.ReadAllText(PathOf(ContinuityScope.User)), File.ReadAllText(ContingencyService.LastGoodPath(PathOf(ContinuityScope.User))));
    }

    public static TheoryData<string> NotFiles() => new() { "fifo", "dev-zero", "sparse-3GB", "directory" };

    [SkippableTheory]
    [MemberData(nameof(NotFiles))]
    public async Task A_fifo_a_device_a_huge_file_or_a_directory_is_refused_at_once_without_reading_it(string kind)
    {
        Skip.If(OperatingSystem.IsWindows(), "FIFOs and /dev/zero are Unix");
        var path = Path.Combine(_dir, "User", "contingency.json");
        switch (kind)
        {
            case "fifo":
                using (var p = Process.Start(new ProcessStartInfo("mkfifo", [path]))!)
                {
                    p.WaitForExit();
                    Skip.If(p.ExitCode != 0, "mkfifo is not available");
                }

                break;
            case "dev-zero":
                path = "/dev/zero";
                break;
            case "sparse-3GB":
                using (var fs = new FileStream(path, FileMode.CreateNew))
                {
                    fs.SetLength(3L * 1024 * 1024 * 1024);
                }

                break;
            default:
                Directory.CreateDirectory(path);
                break;
        }

        var (engine, service) = Create(scope => scope == ContinuityScope.User ? path : PathOf(scope));
        using var _ = engine;
        var before = GC.GetTotalMemory(false);

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q"), Plan()).WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Equal(AiRequestFailure.ContingencyStateUnreadable, e.Failure);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.True(GC.GetTotalMemory(false) - before < 64 * 1024 * 1024, "reading the state must not allocate its size");
        var problem = service.Read(ContinuityScope.User).Problem!;
        Assert.Contains(kind switch { "sparse-3GB" => "bytes a state file may have", "directory" => "directory", _ => "not a regular file" }, problem.Message, StringComparison.Ordinal);
        Assert.Equal(0, Cloud.Hits);
    }

    [Fact]
    public void A_writer_removes_the_temporary_files_of_writers_that_were_killed()
    {
        var (_, service) = Create();
        var orphan = Path.Combine(_dir, "User", ".contingency.json.0badc0de.tmp");
        var unrelated = Path.Combine(_dir, "User", ".contingency.json.last-good.notmine.tmp");
        var deadCopy = Path.Combine(_dir, "User", ".contingency.json.last-good.0ddba11a.tmp");
        var freshCopy = Path.Combine(_dir, "User", ".contingency.json.last-good.feedf00d.tmp");
        File.WriteAllText(orphan, "{\"version\":1,\"entr");
        File.WriteAllText(unrelated, "x");
        File.WriteAllText(deadCopy, "x");
        File.SetLastWriteTimeUtc(deadCopy, DateTime.UtcNow.AddMinutes(-5));
        File.WriteAllText(freshCopy, "x"); // a reader may be writing it right now

        service.Enable(ContinuityScope.User, ["a"], null, null, false);

        Assert.False(File.Exists(orphan));
        Assert.False(File.Exists(deadCopy));
        Assert.True(File.Exists(freshCopy));
        Assert.True(File.Exists(unrelated));
        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "User"), ".contingency.json.????????.tmp"));
    }

    [Fact]
    public async Task Without_a_cloud_key_an_unreadable_state_does_not_block_Ollama()
    {
        var (engine, _) = Create();
        using var __ = engine;
        File.WriteAllText(PathOf(ContinuityScope.User), "garbage");
        var plan = Harness.Plan(BackendEndpoint.Cloud(BackendKind.OpenAI, Cloud.ChatUri.ToString(), "m", null, Harness.Fast), Path.Combine(_dir, "r.jsonl"), Harness.Ollama(Ollama));

        var r = await engine.SendAsync(Harness.Request("q", workflow: "w"), plan);

        Assert.Equal("Ollama", r.Backend);
        Assert.Equal(0, Cloud.Hits);
    }
}

/// <summary>Issue 9, item 4: the JSON-lines reader skips what it cannot read, says which line, and is bounded.</summary>
public sealed class JsonLinesTests
{
    private readonly string _dir = Directory.CreateDirectory(TestPaths.New("jsonlines")).FullName;

    private sealed class Rec
    {
        public required string Name { get; init; }
    }

    private static Rec? ParseRec(System.Text.Json.JsonElement e) => new() { Name = e.GetProperty("name").GetString() ?? throw new FormatException("name is null") };

    [Fact]
    public void Bad_lines_are_skipped_and_reported_with_their_numbers()
    {
        var path = Path.Combine(_dir, "log.jsonl");
        var longLine = "{\"name\":\"" + new string('x', 200) + "\"}";
        File.WriteAllBytes(path, [
            .. Encoding.UTF8.GetPreamble(),
            .. Encoding.UTF8.GetBytes("{\"name\":\"one\"}\n{not json\n\n{\"name\":7}\n"),
            0xC3, 0x28, (byte)'\n',
            .. Encoding.UTF8.GetBytes(longLine + "\n{\"other\":1}\n[1]\n{\"name\":\"last\"}"),
        ]);
        var problems = new List<JsonLineProblem>();

        var names = JsonLines.Read(path, ParseRec, problems.Add, maxLineBytes: 100).Select(r => r.Name).ToArray();

        Assert.Equal(["one", "last"], names);
        Assert.Equal([2L, 4, 5, 6, 7, 8], problems.Select(p => p.LineNumber));
        Assert.Contains("not valid UTF-8", problems[2].Reason, StringComparison.Ordinal);
        Assert.Contains("longer than 100", problems[3].Reason, StringComparison.Ordinal);
        Assert.All(problems, p => Assert.Equal(path, p.Path));
    }

    [Fact]
    public void The_contingency_log_reader_skips_a_line_with_a_wrong_field_type()
    {
        var path = Path.Combine(_dir, "contingency-log.jsonl");
        File.WriteAllText(path, string.Join("\n",
            "{\"timestamp\":\"2026-12-01T10:00:00Z\",\"requestId\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"output\":\"yo\"}",
            "{\"timestamp\":\"2026-12-01T10:00:01Z\",\"requestId\":\"b\",\"messages\":[{\"role\":5}]}",
            "{\"timestamp\":null}",
            "{\"timestamp\":\"2026-12-01T10:00:02Z\",\"requestId\":\"c\",\"workflow\":[]}",
            "{\"timestamp\":\"2026-12-01T10:00:03Z\",\"requestId\":\"d\"}"));
        var problems = new List<JsonLineProblem>();

        var ids = ContingencyLog.Read(path, onProblem: problems.Add).Select(e => e.RequestId).ToArray();

        Assert.Equal(["a", "d"], ids);
        Assert.Equal([2L, 3, 4], problems.Select(p => p.LineNumber));
    }

    [SkippableTheory]
    [InlineData("fifo")]
    [InlineData("dev-zero")]
    public async Task A_fifo_or_a_device_as_a_log_is_refused_at_once(string kind)
    {
        Skip.If(OperatingSystem.IsWindows(), "Unix only");
        var path = "/dev/zero";
        if (kind == "fifo")
        {
            path = Path.Combine(_dir, "fifo.jsonl");
            using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]))!;
            p.WaitForExit();
            Skip.If(p.ExitCode != 0, "mkfifo is not available");
        }

        var read = Task.Run(() => ContingencyLog.Read(path).ToArray());
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => read.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("not a regular file", e.Message, StringComparison.Ordinal);
    }
}
