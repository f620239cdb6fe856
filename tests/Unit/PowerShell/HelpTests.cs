using System.Management.Automation;

namespace OllamaContinuity.PowerShellTests;

/// <summary>Every exported cmdlet has MAML help next to the dll: a synopsis, examples, and every parameter described.</summary>
public sealed class HelpTests
{
    public static TheoryData<string> ExportedCmdlets()
    {
        using var s = new ModuleSession();
        var data = new TheoryData<string>();
        foreach (var c in s.Invoke("(Get-Module OllamaContinuity).ExportedCmdlets.Keys"))
        {
            data.Add(c.ToString());
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ExportedCmdlets))]
    public void Every_cmdlet_has_full_help(string name)
    {
        using var s = new ModuleSession();
        var help = Assert.Single(s.Invoke("Get-Help -Name $name -Full", new Dictionary<string, object?> { ["name"] = name }));
        var synopsis = help.Properties["Synopsis"]?.Value?.ToString()?.Trim();
        Assert.False(string.IsNullOrEmpty(synopsis));
        Assert.DoesNotContain(name + " ", synopsis + " "); // auto-generated help repeats the syntax instead of a synopsis

        var examples = s.Invoke("@((Get-Help -Name $name -Examples).examples.example)", new Dictionary<string, object?> { ["name"] = name });
        Assert.True(examples.Count >= 3, $"{name} has {examples.Count} examples, want at least 3 (shell, scheduled task, report)");

        var described = s.Invoke("(Get-Help -Name $name -Full).parameters.parameter | Where-Object { $_.description } | ForEach-Object { $_.name }",
            new Dictionary<string, object?> { ["name"] = name }).Select(p => p.ToString()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var cmd = (CmdletInfo)Assert.Single(s.Invoke("Get-Command -Name $name", new Dictionary<string, object?> { ["name"] = name })).BaseObject;
        var common = new HashSet<string>(PSCmdlet.CommonParameters.Concat(PSCmdlet.OptionalCommonParameters), StringComparer.OrdinalIgnoreCase);
        var missing = cmd.Parameters.Keys.Where(p => !common.Contains(p) && !described.Contains(p)).ToArray();
        Assert.True(missing.Length == 0, $"{name}: no help for parameter(s) {string.Join(", ", missing)}");
    }

    [Fact]
    public void The_about_topic_ships_with_the_module()
    {
        Assert.True(File.Exists(Path.Combine(ModuleSession.ModuleDirectory, "en-US", "about_OllamaContinuity.help.txt")));
        Assert.True(File.Exists(Path.Combine(ModuleSession.ModuleDirectory, "OllamaContinuity.dll-Help.xml")));
    }
}
