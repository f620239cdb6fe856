using OllamaContinuity.TestSupport;
using Microsoft.Extensions.Time.Testing;
using OllamaContinuity.Hardening;
using OllamaContinuity.Native;

namespace OllamaContinuity.Tests.Hardening;

/// <summary>Set-OllamaHardening's engine against a staged root in a temp directory (-Root): real files, no systemctl.</summary>
public sealed class HardeningPlannerTests : IDisposable
{
    private const string Unit = "[Unit]\nDescription=Ollama Service\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nGroup=ollama\nRestart=always\nRestartSec=3\n\n[Install]\nWantedBy=default.target\n";
    private readonly string _root = TestPaths.New("harden");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 6, 0, 0, TimeSpan.Zero));
    private readonly RecordingCommandRunner _runner = new();

    public HardeningPlannerTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "etc/systemd/system"));
        File.WriteAllText(Path.Combine(_root, "etc/systemd/system/ollama.service"), Unit);
        File.WriteAllText(Path.Combine(_root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nollama:x:999:999::/usr/share/ollama:/bin/false\n");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string DropIn => Path.Combine(_root, "etc/systemd/system/ollama.service.d/90-ollamacontinuity.conf");

    private async Task<HardeningPlan> Apply(HardeningRequest r)
    {
        var plan = await HardeningPlanner.PlanAsync(r, _runner, new InMemoryMachineEnvironment(), _time);
        var exec = new HardeningExecutor(_runner, new InMemoryMachineEnvironment());
        foreach (var step in plan.Steps)
        {
            await exec.ExecuteAsync(step);
        }

        return plan;
    }

    private HardeningRequest Full(string bind = "127.0.0.1:11434") => new()
    {
        Root = _root,
        Platform = HardeningPlatform.Linux,
        BindAddress = bind,
        AllowedOrigins = ["https://app.example.com", "http://intranet:8080"],
        DisableWebUI = true,
        MemoryMax = "16G",
        CPUQuota = "400%",
        TasksMax = "512",
        Sandbox = true,
    };

    [Fact]
    public async Task Drop_in_holds_every_setting_and_keeps_the_models_directory_writable()
    {
        var plan = await Apply(Full());

        var text = File.ReadAllText(DropIn);
        Assert.Equal(
            "# Managed by OllamaContinuity (Set-OllamaHardening). This file is rewritten by the module;\n" +
            "# put your own settings in another drop-in. The file it replaced is kept as <name>.conf.<time>.bak.\n" +
            "[Service]\n" +
            "Environment=\"OLLAMA_HOST=127.0.0.1:11434\"\n" +
            "Environment=\"OLLAMA_ORIGINS=https://app.example.com,http://intranet:8080\"\n" +
            "Environment=\"OLLAMA_NO_WEBSERVER=1\"\n" +
            "User=ollama\nGroup=ollama\nMemoryMax=16G\nCPUQuota=400%\nTasksMax=512\n" +
            "NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n" +
            "ReadWritePaths=/usr/share/ollama -/usr/share/ollama/.ollama/models\n", text);
        Assert.All(plan.Settings, s => Assert.True(s.Changed, s.Setting));
        Assert.Contains(plan.Settings, s => s is { Setting: "OLLAMA_HOST", Before: null, After: "127.0.0.1:11434" });
        Assert.Contains(plan.Settings, s => s is { Setting: "User", Before: "ollama", After: "ollama" });
        Assert.Empty(_runner.Commands); // -Root: no systemctl
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(DropIn));
        }

        // systemd reads it back to the same values.
        var svc = SystemdService.Load(_root);
        Assert.Equal("https://app.example.com,http://intranet:8080", svc.Env("OLLAMA_ORIGINS"));
        Assert.Equal("strict", svc.Directive("ProtectSystem"));
    }

    [Fact]
    public async Task Second_identical_run_changes_nothing_and_writes_nothing()
    {
        await Apply(Full());
        var written = File.GetLastWriteTimeUtc(DropIn);
        var inode = File.ReadAllText(DropIn);

        var second = await Apply(Full());

        Assert.Empty(second.Steps);
        Assert.All(second.Settings, s => Assert.False(s.Changed, s.Setting));
        Assert.Equal(written, File.GetLastWriteTimeUtc(DropIn));
        Assert.Equal(inode, File.ReadAllText(DropIn));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(DropIn)!)); // no backup for a no-op
    }

    [Fact]
    public async Task A_change_backs_up_the_file_it_replaces_and_keeps_earlier_settings()
    {
        await Apply(Full());
        var first = File.ReadAllText(DropIn);
        _time.Advance(TimeSpan.FromMinutes(5));

        var plan = await Apply(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, BindAddress = "0.0.0.0:11434", Force = true });

        var backup = Assert.Single(Directory.GetFiles(Path.GetDirectoryName(DropIn)!, "*.bak"));
        Assert.EndsWith("90-ollamacontinuity.conf.20261124T060500Z.bak", backup, StringComparison.Ordinal);
        Assert.Equal(first, File.ReadAllText(backup));
        var host = Assert.Single(plan.Settings, s => s.Setting == "OLLAMA_HOST");
        Assert.Equal(("127.0.0.1:11434", "0.0.0.0:11434", true), (host.Before, host.After, host.Changed));
        Assert.False(Assert.Single(plan.Settings, s => s.Setting == "User").Changed);
        var text = File.ReadAllText(DropIn);
        Assert.Contains("Environment=\"OLLAMA_HOST=0.0.0.0:11434\"", text, StringComparison.Ordinal);
        Assert.Contains("MemoryMax=16G", text, StringComparison.Ordinal); // earlier settings stay
        Assert.Contains("ProtectSystem=strict", text, StringComparison.Ordinal);
        Assert.DoesNotContain(SystemdService.Load(_root).DropIns, d => d.EndsWith(".bak", StringComparison.Ordinal)); // systemd ignores backups
    }

    [Fact]
    public async Task Other_drop_ins_are_left_alone_and_a_later_override_is_reported()
    {
        var dir = Path.GetDirectoryName(DropIn)!;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "10-gpu.conf"), "[Service]\nEnvironment=\"CUDA_VISIBLE_DEVICES=0\"\n");
        File.WriteAllText(Path.Combine(dir, "override.conf"), "[Service]\nEnvironment=\"OLLAMA_HOST=0.0.0.0\"\n");

        var plan = await Apply(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, BindAddress = "127.0.0.1:11434" });

        Assert.Equal("[Service]\nEnvironment=\"CUDA_VISIBLE_DEVICES=0\"\n", File.ReadAllText(Path.Combine(dir, "10-gpu.conf")));
        Assert.Equal("[Service]\nEnvironment=\"OLLAMA_HOST=0.0.0.0\"\n", File.ReadAllText(Path.Combine(dir, "override.conf")));
        var host = Assert.Single(plan.Settings, s => s.Setting == "OLLAMA_HOST");
        Assert.Equal("0.0.0.0", host.After); // the effective value: override.conf wins
        Assert.Contains(plan.Warnings, w => w.Contains("overridden by", StringComparison.Ordinal) && w.Contains("override.conf", StringComparison.Ordinal));
    }

    [Fact]
    public void Wildcard_origin_is_refused_with_the_reason_unless_forced()
    {
        var e = Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(new HardeningRequest { AllowedOrigins = ["https://a.example", "*"] }));
        Assert.Equal("WildcardOrigin", e.ErrorId);
        Assert.Contains("every web page", e.Message, StringComparison.Ordinal);
        Assert.Contains("-Force", e.Message, StringComparison.Ordinal);

        var warnings = HardeningPlanner.Validate(new HardeningRequest { AllowedOrigins = ["*"], Force = true });
        Assert.Contains(warnings, w => w.Contains("'*'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("root", "RootServiceUser")]
    [InlineData("0", "RootServiceUser")]
    [InlineData("ollama; rm -rf /", "InvalidServiceUser")]
    [InlineData("", "InvalidServiceUser")]
    public void Root_and_malformed_service_users_are_refused(string user, string id)
    {
        var e = Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(new HardeningRequest { ServiceUser = user }));
        Assert.Equal(id, e.ErrorId);
    }

    [Theory]
    [InlineData("MemoryMax", "16G\nExecStart=/bin/sh")]
    [InlineData("MemoryMax", "lots")]
    [InlineData("CPUQuota", "4")]
    [InlineData("TasksMax", "-1")]
    public void Resource_limits_are_validated_so_nothing_can_be_injected_into_the_unit(string parameter, string value)
    {
        var r = parameter switch
        {
            "MemoryMax" => new HardeningRequest { MemoryMax = value },
            "CPUQuota" => new HardeningRequest { CPUQuota = value },
            _ => new HardeningRequest { TasksMax = value },
        };
        var e = Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(r));
        Assert.Equal(("InvalidResourceLimit", parameter), (e.ErrorId, e.ParamName));
    }

    [Theory]
    [InlineData("0.0.0.0 11434")]
    [InlineData("127.0.0.1\nExecStart=/bin/sh")]
    public void Bind_address_with_spaces_or_newlines_is_refused(string bind) =>
        Assert.Equal("InvalidBindAddress", Assert.Throws<HardeningValidationException>(() => HardeningPlanner.Validate(new HardeningRequest { BindAddress = bind })).ErrorId);

    [Fact]
    public void The_port_80_trap_is_a_warning()
    {
        var warnings = HardeningPlanner.Validate(new HardeningRequest { BindAddress = "http://0.0.0.0", Force = true });
        Assert.Contains(warnings, w => w.Contains("port 80", StringComparison.Ordinal) && w.Contains("not 11434", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Origins_with_quotes_and_percent_are_escaped_for_systemd_and_read_back_verbatim()
    {
        await Apply(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, AllowedOrigins = ["https://a.example/%7E\"x\\"], Force = true });
        Assert.Equal("https://a.example/%7E\"x\\", SystemdService.Load(_root).Env("OLLAMA_ORIGINS"));
        Assert.Contains("%%7E", File.ReadAllText(DropIn), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_Root_it_reloads_systemd_and_restarts_only_with_Restart()
    {
        // Plan against this machine's "/" (reading only), then run the command steps through the recording runner.
        var noRestart = await HardeningPlanner.PlanAsync(new HardeningRequest { Platform = HardeningPlatform.Linux, DropInName = "zz-oc-test-" + Guid.NewGuid().ToString("n"), MemoryMax = "1G" }, _runner, new InMemoryMachineEnvironment(), _time);
        Assert.IsType<WriteFileStep>(noRestart.Steps[0]);
        Assert.Equal(["systemctl daemon-reload"], noRestart.Steps.OfType<RunCommandStep>().Select(s => s.Command.ToString()));
        Assert.Empty(noRestart.Steps.OfType<RestartStep>());

        var restart = await HardeningPlanner.PlanAsync(new HardeningRequest { Platform = HardeningPlatform.Linux, DropInName = "zz-oc-test-" + Guid.NewGuid().ToString("n"), MemoryMax = "1G", Restart = true }, _runner, new InMemoryMachineEnvironment(), _time);
        var exec = new HardeningExecutor(_runner, new InMemoryMachineEnvironment());
        foreach (var step in restart.Steps.Where(s => s is not WriteFileStep))
        {
            await exec.ExecuteAsync(step);
        }

        Assert.Equal(["systemctl daemon-reload", "systemctl restart ollama.service"], _runner.Commands.Select(c => c.ToString()));
    }

    [Fact]
    public async Task Windows_sets_machine_variables_and_restarts_the_service_only_with_Restart()
    {
        var machine = new InMemoryMachineEnvironment();
        machine.Set("OLLAMA_HOST", "0.0.0.0");
        machine.UserValues["OLLAMA_ORIGINS"] = "*";
        var r = new HardeningRequest { Platform = HardeningPlatform.Windows, BindAddress = "127.0.0.1:11434", AllowedOrigins = ["https://app.example.com"], MemoryMax = "8G", Restart = true };
        var plan = await HardeningPlanner.PlanAsync(r, _runner, machine, _time);

        Assert.Equal(["machine environment variable OLLAMA_HOST", "machine environment variable OLLAMA_ORIGINS", "Ollama"], plan.Steps.Select(s => s.Target));
        Assert.Contains(plan.Settings, s => s is { Setting: "OLLAMA_HOST", Before: "0.0.0.0", After: "127.0.0.1:11434", Changed: true });
        Assert.Contains(plan.Warnings, w => w.Contains("-MemoryMax", StringComparison.Ordinal));
        Assert.Contains(plan.Warnings, w => w.Contains("OLLAMA_ORIGINS is also set for the current user", StringComparison.Ordinal));

        var exec = new HardeningExecutor(_runner, machine);
        foreach (var s in plan.Steps)
        {
            await exec.ExecuteAsync(s);
        }

        Assert.Equal("127.0.0.1:11434", machine.Get("OLLAMA_HOST"));
        Assert.Equal(["sc.exe query Ollama", "net.exe stop Ollama", "net.exe start Ollama"], _runner.Commands.Select(c => c.ToString()));

        // Idempotent: nothing left to do.
        var again = await HardeningPlanner.PlanAsync(r, _runner, machine, _time);
        Assert.Empty(again.Steps);
        Assert.All(again.Settings, s => Assert.False(s.Changed));
    }

    [Fact]
    public async Task Windows_restart_stops_the_desktop_app_when_there_is_no_service()
    {
        _runner.Respond = c => c.FileName == "sc.exe" ? new CommandResult(1060, "", "The specified service does not exist") : new CommandResult(0, "", "");
        var msgs = await new HardeningExecutor(_runner, new InMemoryMachineEnvironment()).ExecuteAsync(new RestartStep(HardeningPlatform.Windows, "Ollama"));
        Assert.Equal(["sc.exe query Ollama", "taskkill.exe /IM 'ollama app.exe' /F", "taskkill.exe /IM ollama.exe /F"], _runner.Commands.Select(c => c.ToString()));
        Assert.Contains(msgs, m => m.Contains("Start menu", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MacOS_uses_launchctl_setenv_and_a_LaunchAgent_per_variable()
    {
        _runner.Respond = c => c.Arguments is ["getenv", "OLLAMA_HOST"] ? new CommandResult(0, "0.0.0.0\n", "") : new CommandResult(0, "", "");
        var r = new HardeningRequest { Platform = HardeningPlatform.MacOS, BindAddress = "127.0.0.1:11434", DisableWebUI = true, Restart = true };
        var plan = await HardeningPlanner.PlanAsync(r, _runner, new InMemoryMachineEnvironment(), _time);

        Assert.Contains(plan.Settings, s => s is { Setting: "OLLAMA_HOST", Before: "0.0.0.0", After: "127.0.0.1:11434" });
        Assert.Equal(
            ["launchctl setenv OLLAMA_HOST 127.0.0.1:11434", "/Library/LaunchAgents/com.ollamacontinuity.env.OLLAMA_HOST.plist",
             "launchctl setenv OLLAMA_NO_WEBSERVER 1", "/Library/LaunchAgents/com.ollamacontinuity.env.OLLAMA_NO_WEBSERVER.plist", "Ollama"],
            plan.Steps.Select(s => s.Target));
        var plist = Assert.IsType<WriteFileStep>(plan.Steps[1]).Content;
        Assert.Contains("<string>/bin/launchctl</string>", plist, StringComparison.Ordinal);
        Assert.Contains("<string>127.0.0.1:11434</string>", plist, StringComparison.Ordinal);
        Assert.Contains("<key>RunAtLoad</key>", plist, StringComparison.Ordinal);

        _runner.Respond = _ => new CommandResult(0, "", "");
        var before = _runner.Commands.Count;
        await new HardeningExecutor(_runner, new InMemoryMachineEnvironment()).ExecuteAsync(plan.Steps[^1]);
        Assert.Equal(["osascript -e 'tell application \"Ollama\" to quit'", "open -a Ollama"], _runner.Commands.Skip(before).Select(c => c.ToString()));
    }

    [Fact]
    public async Task MacOS_under_a_root_writes_the_plists_there_and_runs_nothing()
    {
        var r = new HardeningRequest { Platform = HardeningPlatform.MacOS, Root = _root, BindAddress = "127.0.0.1:11434" };
        await Apply(r);
        Assert.Empty(_runner.Commands);
        Assert.True(File.Exists(Path.Combine(_root, "Library/LaunchAgents/com.ollamacontinuity.env.OLLAMA_HOST.plist")));
        var again = await HardeningPlanner.PlanAsync(r, _runner, new InMemoryMachineEnvironment(), _time);
        Assert.Empty(again.Steps);
        Assert.Equal("127.0.0.1:11434", Assert.Single(again.Settings).Before);
    }

    [Fact]
    public async Task Sandbox_skips_ProtectHome_when_the_models_live_under_home()
    {
        File.WriteAllText(Path.Combine(_root, "etc/systemd/system/ollama.service"), Unit.Replace("[Service]\n", "[Service]\nEnvironment=\"OLLAMA_MODELS=/home/ai/models\"\n", StringComparison.Ordinal));
        var plan = await Apply(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, Sandbox = true });
        var text = File.ReadAllText(DropIn);
        Assert.DoesNotContain("ProtectHome", text, StringComparison.Ordinal);
        Assert.Contains("ReadWritePaths=/usr/share/ollama -/home/ai/models", text, StringComparison.Ordinal);
        Assert.Contains(plan.Warnings, w => w.Contains("ProtectHome", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task A_symbolic_link_in_place_of_the_drop_in_is_refused_not_followed()
    {
        Skip.If(OperatingSystem.IsWindows(), "POSIX symbolic links");
        var victim = Path.Combine(_root, "victim.txt");
        File.WriteAllText(victim, "precious");
        Directory.CreateDirectory(Path.GetDirectoryName(DropIn)!);
        File.CreateSymbolicLink(DropIn, victim);

        var plan = await HardeningPlanner.PlanAsync(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, MemoryMax = "1G" }, _runner, new InMemoryMachineEnvironment(), _time);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => new HardeningExecutor(_runner, new InMemoryMachineEnvironment()).ExecuteAsync(plan.Steps[0]));
        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    [Fact]
    public async Task Group_is_the_service_users_primary_group_and_a_missing_user_is_a_warning()
    {
        File.WriteAllText(Path.Combine(_root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nollama:x:999:999::/usr/share/ollama:/bin/false\nsvc-ai:x:998:50::/srv/ai:/bin/false\n");
        File.WriteAllText(Path.Combine(_root, "etc/group"), "root:x:0:\nstaff:x:50:\nollama:x:999:\n");

        var plan = await Apply(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, ServiceUser = "svc-ai", Sandbox = true });
        Assert.Contains("User=svc-ai\nGroup=staff\n", File.ReadAllText(DropIn), StringComparison.Ordinal);
        Assert.Contains("ReadWritePaths=/srv/ai -/usr/share/ollama/.ollama/models", File.ReadAllText(DropIn), StringComparison.Ordinal);

        var missing = await HardeningPlanner.PlanAsync(new HardeningRequest { Root = _root, Platform = HardeningPlatform.Linux, ServiceUser = "nobody-here" }, _runner, new InMemoryMachineEnvironment(), _time);
        Assert.Contains(missing.Warnings, w => w.Contains("'nobody-here' does not exist", StringComparison.Ordinal));
        Assert.DoesNotContain(plan.Warnings, w => w.Contains("does not exist", StringComparison.Ordinal));
    }
}
