// File ops: ensure_directory, remove_file, file_begin/chunk/end (expand_archive and write_secret:
// changes/Files.cs).
using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Pushinstall.Agent
{
    public static class Files
    {
        public const string PartSuffix = ".pushinstall-part";

        public static Dictionary<string, object> Result(string name, object value)
        {
            Dictionary<string, object> result = new Dictionary<string, object>();
            result[name] = value;
            return result;
        }

        /// <summary>Lowercase hex sha256 (the CryptoServiceProvider: allowed under FIPS policy).</summary>
        public static string Sha256(string path)
        {
            using (SHA256CryptoServiceProvider algorithm = new SHA256CryptoServiceProvider())
            using (FileStream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
                return Hex(algorithm.ComputeHash(stream));
            }
        }

        public static string Hex(byte[] digest)
        {
            return BitConverter.ToString(digest).Replace("-", "").ToLowerInvariant();
        }

        /// <summary>A fresh name beside `destination` (same volume: the final move is a rename).</summary>
        public static string TempPath(string destination, string suffix)
        {
            string parent = Path.GetDirectoryName(destination);
            if (!string.IsNullOrEmpty(parent))
            {
                Directory.CreateDirectory(parent);
            }
            return destination + "." + Guid.NewGuid().ToString("N").Substring(0, 12) + suffix;
        }

        public static void MoveIntoPlace(string temp, string destination)
        {
            if (File.Exists(destination))
            {
                File.SetAttributes(destination, FileAttributes.Normal);
                File.Delete(destination);
            }
            File.Move(temp, destination);
        }

        // A written temp file ends one of two ways: in place of destination when it changes
        // something, else removed.
        public static void Settle(string temp, string destination, bool changed)
        {
            if (changed)
            {
                MoveIntoPlace(temp, destination);
            }
            else
            {
                RemoveTemp(temp);
            }
        }

        public static void RemoveTemp(string temp)
        {
            if (!string.IsNullOrEmpty(temp) && File.Exists(temp))
            {
                File.Delete(temp);
            }
        }

        public static object EnsureDirectory(Args args)
        {
            string path = args.Str("path");
            if (Directory.Exists(path))
            {
                return Result("changed", false);
            }
            if (File.Exists(path))
            {
                throw new OpException("InvalidArgument", "a file is in the way of the directory " + path);
            }
            Directory.CreateDirectory(path);
            return Result("changed", true);
        }

        public static object Remove(Args args)
        {
            string path = args.Str("path");
            if (Directory.Exists(path))
            {
                throw new OpException("InvalidArgument", path + " is a directory");
            }
            if (!File.Exists(path))
            {
                return Result("removed", false);
            }
            File.SetAttributes(path, FileAttributes.Normal);
            File.Delete(path);
            return Result("removed", true);
        }

        private static void CheckPart(string path)
        {
            if (!path.EndsWith(PartSuffix, StringComparison.OrdinalIgnoreCase))
            {
                throw new OpException("InvalidArgument", "temp_path must be a name that file_begin answered");
            }
            if (!File.Exists(path))
            {
                throw new OpException("NotFound", "no such temporary file: " + path);
            }
        }

        public static object Begin(Args args)
        {
            string destination = args.Str("destination");
            long size = args.Long("size");
            args.Str("sha256");
            long free = Core.Windows.FreeBytes(destination);
            if (free >= 0 && free < size)
            {
                throw new OpException("DiskFull", Path.GetPathRoot(destination) + " needs " + size
                                      + " bytes, " + free + " are free");
            }
            string temp = TempPath(destination, PartSuffix);
            File.WriteAllBytes(temp, new byte[0]);
            return Result("temp_path", temp);
        }

        public static object Chunk(Args args)
        {
            string temp = args.Str("temp_path");
            long offset = args.Long("offset");
            byte[] data;
            try
            {
                data = Convert.FromBase64String(args.Str("data"));
            }
            catch (FormatException)
            {
                throw new OpException("InvalidArgument", "argument 'data' must be base64");
            }
            CheckPart(temp);
            using (FileStream stream = new FileStream(temp, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                stream.Seek(offset, SeekOrigin.Begin);
                stream.Write(data, 0, data.Length);
                return Result("size", stream.Length);
            }
        }

        /// <summary>The push stream's chunk: exactly `length` bytes of `input` at `offset`.</summary>
        public static object ChunkFrom(Args args, Stream input)
        {
            string temp = args.Str("temp_path");
            long offset = args.Long("offset");
            long length = args.Long("length");
            if (args.Has("data") || offset < 0 || length < 0)
            {
                throw new OpException("InvalidArgument", "a streamed chunk has a length and no data");
            }
            CheckPart(temp);
            using (FileStream stream = new FileStream(temp, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                stream.Seek(offset, SeekOrigin.Begin);
                byte[] buffer = new byte[1024 * 1024];
                long left = length;
                while (left > 0)
                {
                    int read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (read <= 0)
                    {
                        throw new OpException("InvalidArgument", "the push stream ended after "
                                              + (length - left) + " of " + length + " bytes");
                    }
                    stream.Write(buffer, 0, read);
                    left -= read;
                }
                return Result("size", stream.Length);
            }
        }

        public static object End(Args args)
        {
            string temp = args.Str("temp_path");
            string destination = args.Str("destination");
            string expected = args.Str("sha256").ToLowerInvariant();
            CheckPart(temp);
            string actual = Sha256(temp);
            if (actual != expected)
            {
                RemoveTemp(temp);
                throw new OpException("HashMismatch", "pushed file has sha256 " + actual + ", expected " + expected);
            }
            bool changed = !(File.Exists(destination) && Sha256(destination) == actual);
            Settle(temp, destination, changed);
            Dictionary<string, object> result = Result("changed", changed);
            result["sha256"] = actual;
            result["size"] = new FileInfo(destination).Length;
            return result;
        }
    }
}
