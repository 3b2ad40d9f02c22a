// expand_archive and write_secret (docs/ops.md): file ops that change a machine.
using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text;

namespace Pushinstall.Agent
{
    public static class FileChanges
    {
        public static object ExpandArchive(Args args)
        {
            string path = args.Str("path");
            string destination = args.Str("destination");
            if (!File.Exists(path))
            {
                throw new OpException("NotFound", "no such archive: " + path);
            }
            string hash = Files.Sha256(path);
            char separator = Path.DirectorySeparatorChar;
            string root = Path.GetFullPath(destination).TrimEnd(separator) + separator;
            string marker = root + ".pushinstall-expanded";
            if (File.Exists(marker) && File.ReadAllText(marker).Trim() == hash)
            {
                Dictionary<string, object> same = Files.Result("changed", false);
                same["files"] = 0;
                return same;
            }
            int count = 0;
            using (ZipArchive zip = ZipFile.OpenRead(path))
            {
                // every entry is checked before anything is written
                foreach (ZipArchiveEntry entry in zip.Entries)
                {
                    string target = Path.GetFullPath(Path.Combine(root, entry.FullName));
                    if (!target.StartsWith(root, StringComparison.OrdinalIgnoreCase))
                    {
                        throw new OpException("InvalidArgument", "archive entry " + entry.FullName
                                              + " points outside the destination");
                    }
                }
                Directory.CreateDirectory(root);
                foreach (ZipArchiveEntry entry in zip.Entries)
                {
                    string target = Path.GetFullPath(Path.Combine(root, entry.FullName));
                    if (entry.FullName.EndsWith("/") || entry.FullName.EndsWith("\\"))
                    {
                        Directory.CreateDirectory(target);
                        continue;
                    }
                    Directory.CreateDirectory(Path.GetDirectoryName(target));
                    entry.ExtractToFile(target, true);
                    count += 1;
                }
            }
            File.WriteAllText(marker, hash);
            Dictionary<string, object> result = Files.Result("changed", true);
            result["files"] = count;
            return result;
        }

        /// <summary>The file gets its ACL while still empty; only then is the content written.</summary>
        public static object WriteSecret(Args args)
        {
            string path = args.Str("path");
            byte[] bytes = new UTF8Encoding(false).GetBytes(args.Str("content"));
            string temp = Files.TempPath(path, ".pushinstall-tmp");
            bool same = false;
            try
            {
                File.WriteAllBytes(temp, new byte[0]);
                Core.Windows.ProtectSecretFile(temp);
                using (FileStream stream = new FileStream(temp, FileMode.Truncate, FileAccess.Write, FileShare.None))
                {
                    stream.Write(bytes, 0, bytes.Length);
                }
                if (File.Exists(path))
                {
                    same = Files.Sha256(path) == Files.Sha256(temp) && Core.Windows.IsSecretFileProtected(path);
                }
                Files.Settle(temp, path, !same);
            }
            catch
            {
                Files.RemoveTemp(temp);
                throw;
            }
            return Files.Result("changed", !same);
        }
    }
}
