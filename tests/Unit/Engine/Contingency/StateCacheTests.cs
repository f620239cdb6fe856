using System.Text;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Contingency;

/// <summary>
/// Issue 10, item 9: the contingency state is read once per version of its file (not on every request), and a
/// changed or damaged file is still seen on the very next request, even when its size and mtime did not change.
/// </summary>
public sealed class StateCacheTests : StandInBackendsTest
{
    private readonly string _dir = TestPaths.New("state-cache");

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

    private string UserFile => Path.Combine(_dir, "User", "contingency.json");

    private (FailoverEngine Engine, ContingencyService Service) Create(TimeSpan? stableAfter = null)
    {
        var service = new ContingencyService(null, scope => Path.Combine(_dir, scope.ToString(), "contingency.json")) { UnreadableStatePolicy = "Fail" };
        if (stableAfter is { } s)
        {
            service.StableAfter = s;
        }

        var engine = new FailoverEngine();
        ContinuityRuntime.Attach(engine, service, null, null);
        return (engine, service);
    }

    private BackendPlan Plan() => Harness.Plan(Harness.Cloud(Cloud), Path.Combine(_dir, "requests.jsonl"), Harness.Ollama(Ollama));

    private static byte[] State(string workflow) =>
        Encoding.UTF8.GetBytes("{\"version\":1,\"entries\":[{\"workflow\":\"" + workflow + "\",\"since\":\"2026-01-01T00:00:00+00:00\"}]}");

    /// <summary>Writes <paramref name="bytes"/> (same length as before) and sets the mtime back to what it was.</summary>
    private void Rewrite(byte[] bytes, bool inPlace)
    {
        var mtime = File.GetLastWriteTimeUtc(UserFile);
        var length = new FileInfo(UserFile).Length;
        Assert.Equal(length, bytes.Length);
        if (inPlace)
        {
            File.WriteAllBytes(UserFile, bytes); // same inode, truncated and written
            File.SetLastWriteTimeUtc(UserFile, mtime);
        }
        else
        {
            var temp = UserFile + ".new";
            File.WriteAllBytes(temp, bytes);
            File.SetLastWriteTimeUtc(temp, mtime);
            File.Move(temp, UserFile, overwrite: true); // an atomic save: another inode at the path
        }

        Assert.Equal(mtime, File.GetLastWriteTimeUtc(UserFile));
        Assert.Equal(length, new FileInfo(UserFile).Length);
    }

    [SkippableFact]
    public async Task A_state_file_replaced_by_one_of_the_same_size_and_mtime_is_seen_on_the_next_request()
    {
        Skip.IfNot(LinuxFile.Available, "the inode and ctime of a file are read with statx (Linux); elsewhere a version younger than 2 s is always read again");
        var (engine, service) = Create(stableAfter: TimeSpan.Zero); // trust every version at once: the cache is used
        using var _ = engine;
        File.WriteAllBytes(UserFile, State("hr-aaa"));
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);

        Rewrite(State("hr-bbb"), inPlace: false);

        Assert.False((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-bbb"), Plan())).Contingency);
        Assert.Equal("hr-bbb", Assert.Single(service.Read(ContinuityScope.User).Entries).Workflow);
    }

    [SkippableFact]
    public async Task A_state_file_damaged_in_place_with_the_same_size_and_mtime_fails_closed_on_the_next_request()
    {
        Skip.IfNot(LinuxFile.Available, "the ctime of a file is read with statx (Linux); elsewhere a version younger than 2 s is always read again");
        var (engine, _) = Create(stableAfter: TimeSpan.Zero);
        using var __ = engine;
        File.WriteAllBytes(UserFile, State("hr-aaa"));
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);
        Assert.False((await engine.SendAsync(Harness.Request("q", workflow: "sales"), Plan())).Contingency);
        var cloudHits = Cloud.Hits;

        Thread.Sleep(50); // past the kernel's timestamp tick, so that the write moves the ctime (which nobody can set back)
        var damaged = State("hr-aaa");
        damaged[^3] = (byte)'?'; // "...+00:00\"}]}" -> "...+00:00\"?]}": the same size, not JSON
        Rewrite(damaged, inPlace: true);

        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q", workflow: "sales"), Plan()));
        Assert.Equal(AiRequestFailure.ContingencyStateUnreadable, e.Failure);
        Assert.Contains(UserFile, e.Message, StringComparison.Ordinal);
        Assert.Equal(cloudHits, Cloud.Hits);
    }

    [Fact]
    public async Task A_state_file_changed_right_after_it_was_read_is_seen_although_its_times_may_not_have_moved()
    {
        // The default window: a version younger than 2 s is read again on every request, so a change within the same
        // timestamp tick (same size, same mtime, possibly the same ctime) cannot be missed.
        var (engine, _) = Create();
        using var __ = engine;
        File.WriteAllBytes(UserFile, State("hr-aaa"));
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);

        Rewrite(State("hr-bbb"), inPlace: true);
        Assert.False((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);

        Rewrite(Encoding.UTF8.GetBytes(new string('x', State("hr-bbb").Length)), inPlace: true);
        var e = await Assert.ThrowsAsync<AiRequestException>(() => engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan()));
        Assert.Equal(AiRequestFailure.ContingencyStateUnreadable, e.Failure);
    }

    [SkippableFact]
    public async Task A_state_file_deleted_after_it_was_cached_is_no_contingency_on_the_next_request()
    {
        Skip.IfNot(LinuxFile.Available, "statx (Linux)");
        var (engine, _) = Create(stableAfter: TimeSpan.Zero);
        using var __ = engine;
        File.WriteAllBytes(UserFile, State("hr-aaa"));
        Assert.True((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);
        File.Delete(UserFile);
        Assert.False((await engine.SendAsync(Harness.Request("q", workflow: "hr-aaa"), Plan())).Contingency);
    }
}
