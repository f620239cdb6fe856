using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Hardening;

/// <summary>Issue 9, item 9: -Root never writes (or reads) outside the root through a symbolic link.</summary>
public sealed class RootContainmentTests : IDisposable
{
    private readonly string _base = TestPaths.New("root-escape");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 6, 0, 0, TimeSpan.Zero));

    public RootContainmentTests()
    {
        Directory.CreateDirectory(Path.Combine(_base, "image/etc"));
        Directory.CreateDirectory(Path.Combine(_base, "outside/system"));
        File.WriteAllText(Path.Combine(_base, "image/etc/passwd"), "ollama:x:999:999::/usr/share/ollama:/bin/false\n");
    }

    private string Root => Path.Combine(_base, "image");

    public void Dispose() => Directory.Delete(_base, recursive: true);

    private Task<HardeningPlan> Plan(HardeningPlatform platform = HardeningPlatform.Linux) =>
        HardeningPlanner.PlanAsync(new HardeningRequest { Root = Root, Platform = platform, BindAddress = "127.0.0.1:11434" }, new RecordingCommandRunner(), new InMemoryMachineEnvironment(), _time);

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_symlinked_parent_that_leaves_the_root_is_refused_and_nothing_is_written_outside(bool absolute)
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root is for Linux and macOS files");
        Directory.CreateDirectory(Path.Combine(Root, "etc/systemd"));
        var outside = Path.Combine(_base, "outside/system");
        File.CreateSymbolicLink(Path.Combine(Root, "etc/systemd/system"), absolute ? outside : "../../../outside/system");

        var e = await Assert.ThrowsAsync<HardeningValidationException>(() => Plan());

        Assert.Equal("PathOutsideRoot", e.ErrorId);
        Assert.Contains(outside, e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside, "*", SearchOption.AllDirectories));
    }

    [SkippableFact]
    public async Task A_link_that_stays_inside_the_root_is_fine()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root is for Linux and macOS files");
        Directory.CreateDirectory(Path.Combine(Root, "usr/lib/systemd/system"));
        File.CreateSymbolicLink(Path.Combine(Root, "lib"), "usr/lib"); // merged /usr, as Debian and Fedora images have
        Directory.CreateDirectory(Path.Combine(Root, "etc/systemd/system"));

        var plan = await Plan();

        Assert.Single(plan.Steps.OfType<WriteFileStep>());
    }

    [SkippableFact]
    public async Task A_link_planted_after_planning_is_caught_when_writing()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root is for Linux and macOS files");
        Directory.CreateDirectory(Path.Combine(Root, "etc/systemd/system"));
        var plan = await Plan();
        var outside = Path.Combine(_base, "outside/system");
        File.CreateSymbolicLink(Path.Combine(Root, "etc/systemd/system/ollama.service.d"), outside);

        var exec = new HardeningExecutor(new RecordingCommandRunner(), new InMemoryMachineEnvironment());
        await Assert.ThrowsAsync<HardeningValidationException>(() => exec.ExecuteAsync(plan.Steps.OfType<WriteFileStep>().Single()));

        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [SkippableFact]
    public async Task A_macOS_LaunchAgents_link_out_of_the_root_is_refused()
    {
        Skip.If(OperatingSystem.IsWindows(), "-Root is for Linux and macOS files");
        Directory.CreateDirectory(Path.Combine(Root, "Library"));
        File.CreateSymbolicLink(Path.Combine(Root, "Library/LaunchAgents"), Path.Combine(_base, "outside/system"));

        Assert.Equal("PathOutsideRoot", (await Assert.ThrowsAsync<HardeningValidationException>(() => Plan(HardeningPlatform.MacOS))).ErrorId);
    }

    [SkippableFact]
    public void RealPath_follows_relative_and_absolute_links_per_component()
    {
        Skip.If(OperatingSystem.IsWindows(), "POSIX paths");
        Directory.CreateDirectory(Path.Combine(Root, "a/b"));
        File.CreateSymbolicLink(Path.Combine(Root, "l1"), "a");
        File.CreateSymbolicLink(Path.Combine(Root, "a/up"), "..");
        Assert.Equal(Path.Combine(Root, "a/b/new/file"), RootedPath.RealPath(Path.Combine(Root, "l1/up/l1/b/new/file")));
        Assert.True(RootedPath.IsInside(Root, Path.Combine(Root, "l1/up/a/b")));
        Assert.False(RootedPath.IsInside(Root, Path.Combine(Root, "l1/up/../outside")));
    }
}
