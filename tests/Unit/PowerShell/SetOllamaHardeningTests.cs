using OllamaContinuity.TestSupport;
using System.Management.Automation;

namespace OllamaContinuity.PowerShellTests;

/// <summary>Set-OllamaHardening as a user calls it, against a staged root (-Root) in a temp directory.</summary>
public sealed class SetOllamaHardeningTests : IDisposable
{
    private const string Id = ",OllamaContinuity.Commands.SetOllamaHardeningCommand";
    private readonly ModuleSession _s = new();
    private readonly string _root = TestPaths.New("ps-harden");

    public SetOllamaHardeningTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "etc/systemd/system"));
        File.WriteAllText(Path.Combine(_root, "etc/systemd/system/ollama.service"), "[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=ollama\nGroup=ollama\n");
    }

    public void Dispose()
    {
        _s.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private string DropIn => Path.Combine(_root, "etc/systemd/system/ollama.service.d/90-ollamacontinuity.conf");

    private Dictionary<string, object?> Vars => new() { ["root"] = _root };

    [Fact]
    public void Applies_under_Root_with_one_typed_object_per_setting_then_changes_nothing()
    {
        var first = _s.Invoke("Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -AllowedOrigins 'https://app.example.com' -DisableWebUI -MemoryMax 16G -Sandbox", Vars);
        Assert.Empty(_s.Streams!.Error);
        Assert.All(first, o => Assert.Equal("OllamaContinuity.Hardening.HardeningSetting", o.BaseObject.GetType().FullName));
        Assert.Equal(
            ["OLLAMA_HOST", "OLLAMA_ORIGINS", "OLLAMA_NO_WEBSERVER", "User", "Group", "MemoryMax", "NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome", "ReadWritePaths"],
            first.Select(o => (string)o.Properties["Setting"].Value));
        Assert.Contains(first, o => (string)o.Properties["Setting"].Value == "OLLAMA_HOST" && o.Properties["Before"].Value is null && (bool)o.Properties["Changed"].Value);
        Assert.Contains("Environment=\"OLLAMA_HOST=127.0.0.1:11434\"", File.ReadAllText(DropIn), StringComparison.Ordinal);

        var second = _s.Invoke("Set-OllamaHardening -Root $root -BindAddress 127.0.0.1:11434 -AllowedOrigins 'https://app.example.com' -DisableWebUI -MemoryMax 16G -Sandbox -Verbose", Vars);
        Assert.All(second, o => Assert.False((bool)o.Properties["Changed"].Value));
        Assert.Contains(_s.Streams!.Verbose, v => v.Message.StartsWith("Nothing to change", StringComparison.Ordinal));
    }

    [Fact]
    public void WhatIf_names_the_file_and_the_settings_and_touches_nothing()
    {
        var result = _s.Invoke("Set-OllamaHardening -Root $root -BindAddress 0.0.0.0:11434 -Force -WhatIf", Vars);
        Assert.Empty(result);
        Assert.False(File.Exists(DropIn));
        Assert.False(Directory.Exists(Path.GetDirectoryName(DropIn)));
        Assert.Contains("What if: Performing the operation \"Create systemd drop-in: OLLAMA_HOST=0.0.0.0:11434", _s.Host.TestUI.Text, StringComparison.Ordinal);
        Assert.Contains(DropIn, _s.Host.TestUI.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-AllowedOrigins '*'", "WildcardOrigin", "every web page")]
    [InlineData("-AllowedOrigins 'https://a.example','*'", "WildcardOrigin", "-Force")]
    [InlineData("-ServiceUser root", "RootServiceUser", "root")]
    [InlineData("-MemoryMax 'lots'", "InvalidResourceLimit", "MemoryMax")]
    [InlineData("-BindAddress '0.0.0.0 11434'", "InvalidBindAddress", "OLLAMA_HOST")]
    [InlineData("-BindAddress 'not:a:port:x'", "InvalidBindAddress", "OLLAMA_HOST")]
    [InlineData("-BindAddress http://0.0.0.0", "BindAllInterfaces", "every interface")]
    [InlineData("-DropInName '../../evil'", "InvalidDropInName", "drop-in")]
    public void Invalid_input_is_refused_before_anything_is_written(string args, string errorId, string says)
    {
        var result = _s.Invoke($"try {{ Set-OllamaHardening -Root $root {args}; 'after' }} catch {{ $_ }}", Vars);
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal(errorId + Id, e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.Contains(says, e.ToString(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(e.ErrorDetails?.RecommendedAction));
        Assert.False(Directory.Exists(Path.GetDirectoryName(DropIn)));
    }

    [Fact]
    public void Force_allows_the_wildcard_origin_with_a_warning()
    {
        _s.Invoke("Set-OllamaHardening -Root $root -AllowedOrigins '*' -Force", Vars);
        Assert.Empty(_s.Streams!.Error);
        Assert.Contains(_s.Streams.Warning, w => w.Message.Contains("'*'", StringComparison.Ordinal));
        Assert.Contains("OLLAMA_ORIGINS=*", File.ReadAllText(DropIn), StringComparison.Ordinal);
    }

    [Fact]
    public void The_port_80_trap_warns()
    {
        var result = _s.Invoke("Set-OllamaHardening -Root $root -BindAddress http://0.0.0.0 -Force", Vars);
        Assert.Contains(_s.Streams!.Warning, w => w.Message.Contains("port 80", StringComparison.Ordinal));
        Assert.Contains(result, o => (string)o.Properties["After"].Value == "http://0.0.0.0");
    }

    [Fact]
    public void Root_that_does_not_exist_is_an_error()
    {
        var result = _s.Invoke("try { Set-OllamaHardening -Root \"$root/nope\" -Sandbox } catch { $_ }", Vars);
        Assert.Equal("RootNotFound" + Id, ((ErrorRecord)Assert.Single(result).BaseObject).FullyQualifiedErrorId);
    }
}
